//! Where a webhook may be sent: `https` URLs whose host resolves only to
//! public addresses — never loopback, private, link-local (cloud metadata
//! lives at 169.254.169.254), shared, documentation or other
//! special-purpose ranges. Checked when an endpoint is saved, and again at
//! every delivery by the client's resolver, which hands the connector only
//! the addresses that passed (so a name that re-resolves to a private
//! address later — DNS rebinding — is refused, not followed).
//! `ADUANA_WEBHOOK_ALLOW_PRIVATE=1` lifts both rules (tests, on-premise
//! receivers), and then plain `http` is allowed too.
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
};

use ipnet::IpNet;
use reqwest::Url;

/// Longest a name may take to resolve (a save or a delivery waits on it).
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL may not receive webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not an absolute URL")]
    NotUrl(String),
    #[error("webhook URLs must use https")]
    NotHttps,
    #[error("webhook URLs may not carry a user name or password")]
    Credentials,
    #[error("webhook URLs may be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("the URL has no host")]
    NoHost,
    #[error("`{0}` is a private, loopback, link-local or reserved address")]
    PrivateAddress(IpAddr),
    #[error(
        "`{host}` resolves only to private, loopback, link-local or reserved addresses ({addr})"
    )]
    ResolvesPrivate { host: String, addr: IpAddr },
    #[error("`{0}` does not resolve")]
    Unresolvable(String),
}

/// Special-purpose ranges (IANA registries) that never receive webhooks.
const RESERVED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

fn reserved() -> &'static [IpNet] {
    static NETS: OnceLock<Vec<IpNet>> = OnceLock::new();
    NETS.get_or_init(|| RESERVED.iter().filter_map(|n| n.parse().ok()).collect())
}

/// Whether `ip` is a public unicast address. IPv4-mapped, IPv4-compatible
/// and NAT64 (`64:ff9b::/96`) IPv6 addresses are judged by the IPv4
/// address inside.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[..6] == [0; 6] && s[6] != 0) {
                let o = v6.octets();
                IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else {
                IpAddr::V6(v6)
            }
        }
        v4 => v4,
    };
    !reserved().iter().any(|n| n.contains(&ip))
}

/// Checks `raw` as a webhook URL without resolving it.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    if raw.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw.trim()).map_err(|_| TargetError::NotUrl(raw.to_owned()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(TargetError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    match url.host() {
        None => Err(TargetError::NoHost),
        Some(url::Host::Ipv4(v4)) if !allow_private && !is_public(IpAddr::V4(v4)) => {
            Err(TargetError::PrivateAddress(IpAddr::V4(v4)))
        }
        Some(url::Host::Ipv6(v6)) if !allow_private && !is_public(IpAddr::V6(v6)) => {
            Err(TargetError::PrivateAddress(IpAddr::V6(v6)))
        }
        Some(_) => Ok(url),
    }
}

/// The addresses `host` resolves to that may be contacted; an error when
/// none may.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    let found: Vec<SocketAddr> =
        tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .collect();
    let Some(first) = found.first().copied() else {
        return Err(TargetError::Unresolvable(host.to_owned()));
    };
    if allow_private {
        return Ok(found);
    }
    let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() {
        return Err(TargetError::ResolvesPrivate {
            host: host.to_owned(),
            addr: first.ip(),
        });
    }
    Ok(public)
}

/// Checks `raw` fully at save time: the URL, then (for a host name) its
/// resolution.
pub async fn check_target(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = check_url(raw, allow_private)?;
    if let Some(url::Host::Domain(host)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        resolve(host, port, allow_private).await?;
    }
    Ok(url)
}

/// The delivery client's resolver: only addresses that pass the rules
/// reach the connector.
#[derive(Debug, Clone, Copy)]
pub struct SafeResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), 0, allow_private)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl SafeResolver {
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_reserved_addresses() {
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn url_rules() {
        assert!(check_url("https://93.184.216.34/hook", false).is_ok());
        assert!(check_url("https://hooks.bank.example/x", false).is_ok());
        assert_eq!(
            check_url("http://hooks.bank.example/x", false).err(),
            Some(TargetError::NotHttps)
        );
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(matches!(
            check_url("https://169.254.169.254/latest/meta-data", false),
            Err(TargetError::PrivateAddress(_))
        ));
        assert!(matches!(
            check_url("https://[::ffff:10.0.0.1]/", false),
            Err(TargetError::PrivateAddress(_))
        ));
        assert_eq!(
            check_url("https://user:pw@hooks.bank.example/", false).err(),
            Some(TargetError::Credentials)
        );
        assert!(matches!(
            check_url("not a url", false),
            Err(TargetError::NotUrl(_))
        ));
        assert_eq!(
            check_url("ftp://hooks.bank.example/", false).err(),
            Some(TargetError::NotHttps)
        );
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        assert!(matches!(
            check_target("https://localhost/hook", false).await,
            Err(TargetError::ResolvesPrivate { .. })
        ));
        assert!(check_target("http://localhost/hook", true).await.is_ok());
    }
}
