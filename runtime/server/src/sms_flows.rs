//! Wiring of the messaging capability and the flow host, both ways:
//!
//! - [`FlowSms`]: a flow's `send-sms` (call flows and SMS flows) goes through
//!   `opentact_control::Messaging::send`, the one place that checks and queues an SMS; its
//!   refusals become the flow's `invalid-argument` / `limit-exceeded` / `failed`.
//! - [`ComponentSmsFlows`]: an SMS to a number whose app runs a component runs that component's
//!   `handle-sms` ([`opentact_control::SmsFlows`], called by the inbound path), loaded through
//!   the flow host's compile gate (`FlowHost::load_component_async`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use opentact_call::FlowOutcome;
use opentact_control::{InboundSms, Messaging, SmsFlows, SmsFrom, SmsOrigin, SmsRefusal, SmsSend};
use opentact_flows::{FlowHost, InboundMessage, OutboundSms, SmsContext, SmsSendError, SmsSender, Trigger};
use opentact_store::{AppMode, Repository};
use uuid::Uuid;

/// A flow's `send-sms` through the messaging seam.
pub struct FlowSms(pub Arc<dyn Messaging>);

impl SmsSender for FlowSms {
    fn send(
        &self,
        sms: OutboundSms,
    ) -> Pin<Box<dyn Future<Output = Result<String, SmsSendError>> + Send + '_>> {
        Box::pin(async move {
            let account = Uuid::parse_str(&sms.account).map_err(|_| {
                SmsSendError::Unavailable(format!("the flow's account {:?} is not a UUID", sms.account))
            })?;
            let request = SmsSend {
                account,
                from: SmsFrom::Tn(sms.from),
                to: sms.to,
                text: sms.text,
                custom_callback_url: None,
                origin: SmsOrigin::Flow {
                    app: Uuid::parse_str(&sms.app).ok(),
                    call: sms.call.as_deref().and_then(|call| Uuid::parse_str(call).ok()),
                },
            };
            match self.0.send(request).await {
                Ok(message) => Ok(message.uuid.to_string()),
                Err(refusal @ SmsRefusal::Invalid { .. }) => Err(SmsSendError::Invalid(refusal.to_string())),
                // The balance is a limit too: the guest reads `limit-exceeded` and the reason.
                Err(refusal @ (SmsRefusal::RateLimited { .. } | SmsRefusal::PaymentRequired(_))) => {
                    Err(SmsSendError::Limited(refusal.to_string()))
                }
                Err(refusal @ SmsRefusal::Unavailable(_)) => {
                    Err(SmsSendError::Unavailable(refusal.to_string()))
                }
            }
        })
    }
}

/// Runs a component app's `handle-sms` for an inbound SMS.
pub struct ComponentSmsFlows {
    pub host: Arc<FlowHost>,
    pub store: Arc<dyn Repository>,
}

impl ComponentSmsFlows {
    async fn run(&self, message: InboundSms) -> Result<(), String> {
        let app = self
            .store
            .get_app(message.account, message.app)
            .await
            .map_err(|error| format!("reading the app: {error}"))?
            .ok_or("the number's app is gone")?;
        if !matches!(app.mode, AppMode::Component) {
            return Err("the number's app does not run a component".to_owned());
        }
        let version = app.current_component.ok_or("the app has no deployed component")?;
        let bytes = self
            .store
            .component_bytes(message.account, version)
            .await
            .map_err(|error| format!("reading the component: {error}"))?
            .ok_or("the app's component version is gone")?;
        // Through the compile gate like uploads and calls: a miss waits for one of the few
        // compile permits and compiles on the blocking pool within flows.compile_timeout_ms, so
        // a burst of SMS to apps with uncached components cannot take every blocking thread.
        let component = self
            .host
            .load_component_async(bytes)
            .await
            .map_err(|error| format!("loading the component: {error}"))?;
        let tn = u64::try_from(message.tn)
            .map_err(|_| format!("the receiving number {} is not valid", message.tn))?;
        let context = SmsContext::new(InboundMessage {
            id: message.id.to_string(),
            account: message.account.to_string(),
            app: message.app.to_string(),
            from: message.from,
            to: message.to,
            tn,
            text: message.text,
        })
        .with_numbers(Arc::new(opentact_calls::NumberData));
        match self.host.run(&component, Trigger::Sms(context)).await {
            FlowOutcome::Completed => Ok(()),
            FlowOutcome::Failed(reason) | FlowOutcome::AtCapacity(reason) => Err(reason),
            FlowOutcome::TimedOut => Err(format!(
                "handle-sms ran longer than {} s and was stopped",
                opentact_flows::MAX_SMS_FLOW_LENGTH.as_secs()
            )),
        }
    }
}

impl SmsFlows for ComponentSmsFlows {
    fn handle_sms(
        &self,
        message: InboundSms,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(self.run(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses every SMS with `refusal`, keeping the request.
    struct Refusing {
        refusal: SmsRefusal,
        asked: parking_lot::Mutex<Vec<SmsSend>>,
    }

    impl Messaging for Refusing {
        fn send(
            &self,
            request: SmsSend,
        ) -> Pin<Box<dyn Future<Output = Result<opentact_control::SentSms, SmsRefusal>> + Send + '_>>
        {
            self.asked.lock().push(request);
            Box::pin(async move { Err(self.refusal.clone()) })
        }
    }

    fn outbound() -> OutboundSms {
        OutboundSms {
            account: "6f1c2b1e-8a3c-4c1e-9a53-7a7f1b1c0001".into(),
            app: "6f1c2b1e-8a3c-4c1e-9a53-7a7f1b1c0002".into(),
            call: None,
            from: "12025550111".into(),
            to: "+12015550100".into(),
            text: "hi".into(),
        }
    }

    #[tokio::test]
    async fn a_flows_sms_goes_through_the_seam_and_refusals_keep_their_message() {
        let cases = [
            (
                SmsRefusal::invalid("tn", "SMS is not enabled"),
                SmsSendError::Invalid("tn: SMS is not enabled".into()),
            ),
            (
                SmsRefusal::RateLimited { message: "too fast".into(), retry_after_secs: 2 },
                SmsSendError::Limited("too fast (retry after 2 s)".into()),
            ),
            (SmsRefusal::Unavailable("store down".into()), SmsSendError::Unavailable("store down".into())),
        ];
        for (refusal, expected) in cases {
            let messaging = Arc::new(Refusing { refusal, asked: Default::default() });
            let sender = FlowSms(messaging.clone());
            assert_eq!(sender.send(outbound()).await, Err(expected));
            let asked = messaging.asked.lock().clone();
            assert_eq!(asked.len(), 1);
            assert_eq!(asked[0].from, SmsFrom::Tn("12025550111".into()));
            assert_eq!(
                asked[0].origin,
                SmsOrigin::Flow {
                    app: Uuid::parse_str("6f1c2b1e-8a3c-4c1e-9a53-7a7f1b1c0002").ok(),
                    call: None
                }
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_sms_flow_loads_its_component_through_the_compile_gate() {
        use opentact_store::{AccountRepo, SipControlAppRepo};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = opentact_store::Store::open(&format!("sqlite://{}/db?mode=rwc", dir.path().display()))
            .await
            .expect("store");
        let account = store
            .create_account(opentact_store::NewAccount {
                name: "gate".into(),
                email: "gate@example.test".into(),
                password: "correct horse battery".into(),
                time_zone: "UTC".into(),
            })
            .await
            .expect("account")
            .uuid;
        let app = store
            .create_app(
                account,
                opentact_store::NewSipControlApp {
                    name: "sms".into(),
                    mode: AppMode::Component,
                    auto_answer: true,
                    max_call_length_min: 60,
                    event_url: None,
                    shaken: Default::default(),
                },
            )
            .await
            .expect("app");
        store
            .add_component_version(account, app.uuid, &opentact_guest_artifacts::bytes("hello"))
            .await
            .expect("version");
        // No component compiles in 1 ms: only the gate's time limit can stop this one.
        let host = FlowHost::new(opentact_flows::HostConfig {
            compile_timeout_ms: 1,
            max_concurrent_compiles: 1,
            ..opentact_flows::HostConfig::default()
        })
        .expect("host");
        let flows = ComponentSmsFlows { host: Arc::new(host), store: Arc::new(store) };
        let message = InboundSms {
            id: Uuid::new_v4(),
            account,
            app: app.uuid,
            from: "13105550111".into(),
            to: "12025550100".into(),
            tn: 12_025_550_100,
            text: "hi".into(),
        };
        let error = flows.handle_sms(message).await.expect_err("the compile is over the gate's limit");
        assert!(error.contains("flows.compile_timeout_ms"), "{error}");
    }
}
