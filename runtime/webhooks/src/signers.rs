//! Each account's signer: made (and its key pair stored) on first use, then kept. Event
//! webhooks, the SMS app's webhook and the XML guest's requests of calls (the app's webhook,
//! `<Callback>`, a `<Gather>`'s action, `<Curl>`) are all signed with it, so a customer's
//! server checks every request from the platform the same way.

use std::collections::HashMap;
use std::sync::Arc;

use opentact_events::signing::{self, Signer};
use opentact_store::{SigningKey, WebhookRepo};
use parking_lot::Mutex;
use uuid::Uuid;

/// The accounts' signers (an account's key never changes, so they are kept for the process).
#[derive(Debug, Default)]
pub struct AccountSigners(Mutex<HashMap<Uuid, Arc<Signer>>>);

impl AccountSigners {
    /// The account's signer; why not, in words, when its key cannot be read or made.
    pub async fn get(&self, store: &dyn WebhookRepo, account: Uuid) -> Result<Arc<Signer>, String> {
        if let Some(signer) = self.0.lock().get(&account) {
            return Ok(signer.clone());
        }
        let key = match store.signing_key(account).await {
            Ok(Some(key)) => key,
            Ok(None) => {
                let (public_key, private_pkcs8) =
                    signing::generate().map_err(|e| format!("making the signing key: {e}"))?;
                store
                    .insert_signing_key(account, SigningKey { public_key, private_pkcs8 })
                    .await
                    .map_err(|e| format!("storing the signing key: {e}"))?
            }
            Err(e) => return Err(format!("reading the signing key: {e}")),
        };
        let signer = Arc::new(
            Signer::from_pkcs8_base64(&key.private_pkcs8).map_err(|e| format!("the signing key: {e}"))?,
        );
        self.0.lock().insert(account, signer.clone());
        Ok(signer)
    }
}
