//! Resolving once and connecting to exactly the checked addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `connect` was given no address.
    #[error("no address to connect to")]
    NoAddress,
    /// Every address refused or failed; the last error is kept.
    #[error("could not connect to {address}: {source}")]
    Failed {
        /// The last address tried.
        address: SocketAddr,
        /// Its error.
        #[source]
        source: std::io::Error,
    },
    /// The time ran out before any address accepted.
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
}

/// The addresses of `host` (a name, an IP address, or a bracketed IPv6 address) on `port`.
/// An address literal is returned as is, without a lookup.
pub async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((bare, port)).await?.collect())
}

/// A TCP connection to the first of `addresses` that accepts, tried in order, within
/// `timeout` for all of them. Only these addresses are dialled: pass the ones that were
/// checked, never the host name again.
pub async fn connect(addresses: &[SocketAddr], timeout: Duration) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let mut last = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(source) => last = Some(ConnectError::Failed { address: *address, source }),
            }
        }
        Err(last.unwrap_or(ConnectError::NoAddress))
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| ConnectError::TimedOut(timeout))?
}

/// The TLS client configuration (Mozilla's roots from webpki-roots, so the result does not
/// depend on the machine's certificate store; HTTP/1.1 by ALPN) and the server name
/// certificates are checked against: the host as the request named it.
pub fn tls(host: &str) -> Result<(Arc<ClientConfig>, ServerName<'static>), std::io::Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = match bare.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(bare.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
    };
    Ok((config, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_are_not_looked_up() {
        let v4 = resolve("192.0.2.1", 80).await.expect("v4");
        assert_eq!(v4, ["192.0.2.1:80".parse().expect("addr")]);
        let v6 = resolve("[2001:db8::1]", 443).await.expect("v6");
        assert_eq!(v6, ["[2001:db8::1]:443".parse().expect("addr")]);
    }

    #[tokio::test]
    async fn connect_tries_the_given_addresses_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("addr");
        // A port nothing listens on: bind, note it, close.
        let closed =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        let stream = connect(&[closed, open], Duration::from_secs(5)).await.expect("second address");
        assert_eq!(stream.peer_addr().expect("peer"), open);
        let error = connect(&[closed], Duration::from_secs(5)).await.expect_err("refused");
        assert!(error.to_string().contains(&closed.to_string()), "{error}");
        assert!(matches!(connect(&[], Duration::from_secs(1)).await, Err(ConnectError::NoAddress)));
    }

    #[test]
    fn tls_names_the_host_as_given() {
        let (_, name) = tls("hooks.example.com").expect("name");
        assert_eq!(name, ServerName::try_from("hooks.example.com").expect("dns name"));
        let (_, ip) = tls("[2001:db8::1]").expect("ip");
        assert!(matches!(ip, ServerName::IpAddress(_)));
        assert!(tls("bad name!").is_err());
    }
}
