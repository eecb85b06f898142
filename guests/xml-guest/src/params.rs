//! The synchronous webhook request: the call object, as JSON (POST/PATCH/DELETE) or as query
//! parameters appended to the URL's own query (GET).

use serde_json::{Map, Value, json};

/// What a request describes: the call, and the result of the verb that sent it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallObject {
    /// Call id.
    pub call: String,
    /// Caller.
    pub from: String,
    /// Callee.
    pub to: String,
    /// The account's number, when any.
    pub tn: Option<u64>,
    /// `in` or `out`.
    pub direction: &'static str,
    /// The call's state.
    pub state: String,
    /// The app id (SIP Control App).
    pub sca: String,
    /// Account id.
    pub account: String,
    /// The sending verb's tag.
    pub tag: Option<String>,
    /// The call's meta values.
    pub meta: Vec<(String, String)>,
    /// Digits of the gather that sent it.
    pub dtmf: Option<String>,
    /// Attempts of that gather.
    pub attempts: Option<u32>,
    /// The last recording's id.
    pub recording: Option<String>,
    /// The legacy Gather form also sends `code` and `success`.
    pub legacy: bool,
}

impl CallObject {
    /// The JSON body.
    pub fn json(&self) -> String {
        let mut object = Map::new();
        for (key, value) in self.pairs() {
            object.insert(key.to_owned(), Value::String(value));
        }
        if let Some(tn) = self.tn {
            object.insert("tn".to_owned(), json!(tn));
        }
        if let Some(attempts) = self.attempts {
            object.insert("attempts".to_owned(), json!(attempts));
        }
        let meta: Map<String, Value> =
            self.meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        object.insert("meta".to_owned(), Value::Object(meta));
        Value::Object(object).to_string()
    }

    /// The fields as strings, in a stable order.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("call", self.call.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
            ("direction", self.direction.to_owned()),
            ("state", self.state.clone()),
            ("sca", self.sca.clone()),
            ("account", self.account.clone()),
        ];
        if let Some(tn) = self.tn {
            pairs.push(("tn", tn.to_string()));
        }
        if let Some(tag) = &self.tag {
            pairs.push(("tag", tag.clone()));
        }
        if let Some(dtmf) = &self.dtmf {
            pairs.push(("dtmf", dtmf.clone()));
            if self.legacy {
                pairs.push(("code", dtmf.clone()));
                pairs.push(("success", (!dtmf.is_empty()).to_string()));
            }
        }
        if let Some(attempts) = self.attempts {
            pairs.push(("attempts", attempts.to_string()));
        }
        if let Some(recording) = &self.recording {
            pairs.push(("recording", recording.clone()));
        }
        pairs
    }

    /// `url` with the fields appended to its query (its own parameters are kept).
    pub fn url_with_query(&self, url: &str) -> String {
        let (base, fragment) = match url.split_once('#') {
            Some((base, fragment)) => (base, Some(fragment)),
            None => (url, None),
        };
        let mut out = base.to_owned();
        let mut separator = if base.contains('?') { '&' } else { '?' };
        if base.ends_with('?') || base.ends_with('&') {
            separator = '\0';
        }
        let mut fields = self.pairs();
        fields.extend(self.meta.iter().map(|(k, v)| ("meta", format!("{k}={v}"))));
        for (key, value) in fields {
            if separator != '\0' {
                out.push(separator);
            }
            separator = '&';
            out.push_str(&encode(key));
            out.push('=');
            out.push_str(&encode(&value));
        }
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
        out
    }
}

/// Percent-encode a query component (RFC 3986 unreserved characters stay).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> CallObject {
        CallObject {
            call: "c1".into(),
            from: "12025550100".into(),
            to: "12025550111".into(),
            tn: Some(12025550111),
            direction: "in",
            state: "answered".into(),
            sca: "app".into(),
            account: "acct".into(),
            dtmf: Some("4#".into()),
            attempts: Some(1),
            legacy: true,
            ..CallObject::default()
        }
    }

    #[test]
    fn get_keeps_the_existing_query_and_encodes() {
        let url = object().url_with_query("https://e.com/menu?campaign=7");
        assert!(url.starts_with("https://e.com/menu?campaign=7&call=c1&from=12025550100"), "{url}");
        assert!(url.contains("&dtmf=4%23&code=4%23&success=true&attempts=1"), "{url}");
        assert!(object().url_with_query("https://e.com/x").starts_with("https://e.com/x?call=c1"));
    }

    #[test]
    fn json_carries_the_call_object() {
        let value: Value = serde_json::from_str(&object().json()).expect("json");
        assert_eq!(value["from"], "12025550100");
        assert_eq!(value["tn"], 12025550111u64);
        assert_eq!(value["direction"], "in");
        assert_eq!(value["dtmf"], "4#");
        assert!(value["meta"].is_object());
    }
}
