//! Write Opentact flows in Rust.
//!
//! A flow is a WebAssembly component (built for `wasm32-wasip2`, world `opentact:flow@0.2.0`):
//! the platform runs one instance per call ([`Flow::handle_call`]) and per SMS received by one
//! of the app's numbers ([`Flow::handle_sms`]). The flow drives the call through blocking
//! requests — answer, say, gather, dial… — and sends SMS with [`send_sms`], each returning a
//! [`Result`] whose [`Error`] the flow can handle (the caller hung up, nobody answered…). The
//! platform owns SIP, media, numbers and messaging; a flow only decides.
//!
//! # Quick start
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! opentact-sdk = "0.1"
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use opentact_sdk::{Call, Dial, Error, Flow, Gather, Result, Say};
//!
//! struct Menu;
//!
//! impl Flow for Menu {
//!     fn handle_call(call: Call) -> Result<()> {
//!         call.answer()?;
//!         call.say("Welcome to Acme.")?;
//!         let choice = Gather::new()
//!             .prompt(Say::new("Press 1 for sales, 2 for support."))
//!             .attempts(2)
//!             .run(&call)?;
//!         match choice.digits.as_str() {
//!             "1" => match call.dial(Dial::new().number("12223334455").timeout(Duration::from_secs(20))) {
//!                 Ok(_) => {}
//!                 Err(Error::NoAnswer | Error::Busy) => call.say("Sales is busy.")?,
//!                 Err(other) => return Err(other),
//!             },
//!             "2" => drop(call.dial(Dial::new().user("support@acme.sip.example"))?),
//!             "" => call.say("Goodbye.")?,
//!             _ => call.say("That is not an option.")?,
//!         }
//!         call.hangup()
//!     }
//! }
//!
//! opentact_sdk::export_flow!(Menu);
//! ```
//!
//! Build the component and try it against a simulated call with the flow runner:
//!
//! ```sh
//! cargo build --target wasm32-wasip2 --release
//! opentact flow run target/wasm32-wasip2/release/menu.wasm --from 12025550100 --to 12025550111 --digits 1
//! ```
//!
//! # The API
//!
//! - [`Flow`] and [`export_flow!`]: the entry points the platform calls.
//! - [`Call`]: every call-control request (`answer`, `say`, `gather`, `dial`, `record`…).
//! - [`send_sms`] with [`Sms`]: messaging, from a call flow or an SMS flow (an auto-responder
//!   is in [`send_sms`]'s documentation and `examples/sms-autoresponder`).
//! - Builders for the requests, with the XML dialect's defaults: [`Say`], [`Play`], [`Tone`],
//!   [`Gather`], [`Record`], [`Dial`], [`Sms`].
//! - [`set_tag`] and [`report`]: events for the flow's own steps; [`lookup_number`]: number data.
//! - [`bindings`]: the raw WIT bindings, for anything the friendly API does not cover.
//!
//! Besides these, a flow may use HTTP through `wasi:http/outgoing-handler` (policed by the
//! host), and Rust's standard library for clocks, randomness and `println!` (captured in the
//! call's log). It has no filesystem, environment, sockets or arguments.
//!
//! The requests compile on the host too (they are stubs there that panic if called), so a
//! flow's pure logic can be unit-tested with `cargo test`.

// The only unsafe code is what wit-bindgen generates for the component ABI.
#![allow(unsafe_code)]
#![warn(missing_docs)]

use std::time::Duration;

/// The raw WIT bindings of the `opentact:flow` world, for what the friendly API does not
/// cover.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "flow",
        pub_export_macro: true,
        export_macro_name: "export_flow_bindings",
        default_bindings_module: "opentact_sdk::bindings",
    });
}

/// The bindings of the `xml-flow` world, for the platform's built-in XML guest only (its
/// `app-control` interface is not available to customer components: the platform refuses them).
///
/// Behind the hidden feature `xml-guest`: every `generate!` linked into a component adds its
/// world to the component's, so these must not reach customer components.
#[cfg(feature = "xml-guest")]
#[doc(hidden)]
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod xml_bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "xml-flow",
        pub_export_macro: true,
        export_macro_name: "export_xml_flow",
        default_bindings_module: "opentact_sdk::xml_bindings",
    });
}

mod call;
mod dial;
mod error;
mod events;
mod gather;
mod numbers;
mod play;
mod record;
mod say;
mod sms;
mod tone;

pub use bindings::opentact::flow::types::{
    CallInfo, CallState, DialResult, DialTarget, Direction, GatherEnd, GatherResult, Gender, HangupReason,
    Leg, Recording, SmsMessage,
};
pub use call::Call;
pub use dial::Dial;
pub use error::{Error, Result};
pub use events::{Phase, report, set_tag};
pub use gather::{Gather, Prompt};
pub use numbers::{Location, lookup_number};
pub use play::Play;
pub use record::Record;
pub use say::Say;
pub use sms::{Sms, send_sms};
pub use tone::Tone;

/// A flow: implement it on a type and export that type with [`export_flow!`].
///
/// ```no_run
/// use opentact_sdk::{Call, Flow, Result, SmsMessage};
///
/// struct Greeter;
///
/// impl Flow for Greeter {
///     fn handle_call(call: Call) -> Result<()> {
///         call.answer()?;
///         call.say("Hello!")?;
///         call.hangup()
///     }
///
///     fn handle_sms(message: SmsMessage) -> Result<()> {
///         println!("SMS from {}: {}", message.from, message.text);
///         opentact_sdk::send_sms(opentact_sdk::Sms::new(&message.from, "Got it, thanks."))?;
///         Ok(())
///     }
/// }
///
/// opentact_sdk::export_flow!(Greeter);
/// ```
pub trait Flow {
    /// Run the flow for a call. Returning ends the flow: the platform hangs up the call unless
    /// it is bridged. An `Err` is a flow failure: it is reported as an event (its text is the
    /// error's [`Display`](std::fmt::Display)) and the call is hung up.
    fn handle_call(call: Call) -> Result<()>;

    /// Handle an SMS received by one of the app's numbers (the platform has stored it, as an
    /// `smsr` message, before the flow runs). There is no call: answer with [`send_sms`],
    /// which sends from the receiving number by default. The [`Call`] requests are refused
    /// (`Error::InvalidState`), and `Call::info`/`Call::state` stop the flow. An `Err` is logged
    /// and kept with the message. Does nothing by default.
    fn handle_sms(message: SmsMessage) -> Result<()> {
        let _ = message;
        Ok(())
    }
}

/// Export a [`Flow`] as the component's `handler`: call it once, at the top level of the
/// crate (a `cdylib`).
///
/// ```no_run
/// struct Hello;
///
/// impl opentact_sdk::Flow for Hello {
///     fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
///         call.say("Hello!")
///     }
/// }
///
/// opentact_sdk::export_flow!(Hello);
/// ```
///
/// Only a `wasm32` build has the component ABI to export to; on the host (tests, clippy,
/// docs) the macro only checks that the type is a [`Flow`].
#[macro_export]
macro_rules! export_flow {
    ($flow:ty) => {
        const _: () = {
            #[cfg(target_arch = "wasm32")]
            struct OpentactFlowExport;

            #[cfg(target_arch = "wasm32")]
            impl $crate::bindings::exports::opentact::flow::handler::Guest for OpentactFlowExport {
                fn handle_call(info: $crate::CallInfo) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::handle_call::<$flow>(info)
                }

                fn handle_sms(
                    message: $crate::SmsMessage,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::handle_sms::<$flow>(message)
                }
            }

            #[cfg(target_arch = "wasm32")]
    $crate::bindings::export_flow_bindings!(OpentactFlowExport with_types_in $crate::bindings);

            // On the host, naming the entry points keeps the flow type used (no dead-code
            // warning) and checks that it implements `Flow`.
            #[cfg(not(target_arch = "wasm32"))]
            let _ = ($crate::__private::handle_call::<$flow>, $crate::__private::handle_sms::<$flow>);
        };
    };
}

/// What [`export_flow!`] expands to calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    use crate::{Call, CallInfo, Flow, SmsMessage};

    /// The exported `handle-call`: errors become their text.
    pub fn handle_call<F: Flow + ?Sized>(info: CallInfo) -> Result<(), String> {
        F::handle_call(Call::__from_info(info)).map_err(|error| error.to_string())
    }

    /// The exported `handle-sms`: errors become their text.
    pub fn handle_sms<F: Flow + ?Sized>(message: SmsMessage) -> Result<(), String> {
        F::handle_sms(message).map_err(|error| error.to_string())
    }
}

/// A duration in whole ms, as the WIT requests take them; saturates at `u32::MAX` (~49 days).
pub(crate) fn ms(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_saturating_milliseconds() {
        assert_eq!(ms(Duration::from_millis(1500)), 1500);
        assert_eq!(ms(Duration::from_micros(999)), 0);
        assert_eq!(ms(Duration::from_secs(3600)), 3_600_000);
        assert_eq!(ms(Duration::MAX), u32::MAX);
    }

    struct Failing;

    impl Flow for Failing {
        fn handle_call(_: Call) -> Result<()> {
            Err(Error::InvalidArgument("max-digits: 1–128".into()))
        }
    }

    fn info() -> CallInfo {
        CallInfo {
            id: "c".into(),
            account: "a".into(),
            app: "p".into(),
            from: "12025550100".into(),
            to: "12025550111".into(),
            tn: Some(12025550111),
            direction: Direction::Inbound,
            state: CallState::Ringing,
            time_zone: None,
        }
    }

    #[test]
    fn handler_errors_become_their_text() {
        assert_eq!(
            __private::handle_call::<Failing>(info()),
            Err("invalid argument: max-digits: 1–128".to_owned())
        );
        let message = SmsMessage {
            id: "m".into(),
            account: "a".into(),
            app: "p".into(),
            from: "1".into(),
            to: "+2".into(),
            tn: 2,
            text: "hi".into(),
        };
        assert_eq!(__private::handle_sms::<Failing>(message), Ok(()), "handle_sms does nothing by default");
    }

    #[test]
    fn the_call_handle_reads_the_starting_info() {
        let call = Call::__from_info(info());
        assert_eq!((call.id(), call.from(), call.to()), ("c", "12025550100", "12025550111"));
        assert_eq!(call.direction(), Direction::Inbound);
        assert_eq!(call.started().tn, Some(12025550111));
    }

    // The macro must expand on the host too (tests, clippy) without exporting anything.
    export_flow!(Failing);
}
