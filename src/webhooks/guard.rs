//! The SSRF guard for callback URLs: https only (http just for allow-listed hosts), and every
//! address the host resolves to must be public unless the host is allow-listed. The delivery
//! connects to the address that was checked, so a second DNS answer cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// A callback URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    pub addr: SocketAddr,
}

pub async fn check(raw: &str, allow_hosts: &[String]) -> Result<Checked, String> {
    let url = Url::parse(raw).map_err(|err| format!("not a URL ({err})"))?;
    let host = url
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let allowed = allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    match url.scheme() {
        "https" => {}
        "http" if allowed => {}
        "http" => return Err("must use https".into()),
        other => return Err(format!("the scheme `{other}` is not allowed; use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|err| format!("the host `{host}` does not resolve ({err})"))?
            .collect(),
    };
    let first = *addrs
        .first()
        .ok_or_else(|| format!("the host `{host}` has no address"))?;
    if !allowed && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
        return Err(format!(
            "`{host}` resolves to {}, an internal address",
            bad.ip()
        ));
    }
    Ok(Checked { url, addr: first })
}

/// Loopback, private, link-local (cloud metadata), CGNAT, multicast, unspecified and other
/// non-public addresses.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn refused_urls_say_why() {
        let none: Vec<String> = vec![];
        assert!(
            check("http://8.8.8.8/hook", &none)
                .await
                .unwrap_err()
                .contains("https")
        );
        assert!(
            check("ftp://8.8.8.8/hook", &none)
                .await
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            check("https://user:pw@8.8.8.8/", &none)
                .await
                .unwrap_err()
                .contains("credentials")
        );
        assert!(
            check("https://10.0.0.1/", &none)
                .await
                .unwrap_err()
                .contains("internal")
        );
        assert!(
            check("https://[::1]/", &none)
                .await
                .unwrap_err()
                .contains("internal")
        );
        assert!(
            check("https://localhost/", &none)
                .await
                .unwrap_err()
                .contains("internal")
        );
        let checked = check("https://8.8.8.8/hook", &none).await.unwrap();
        assert_eq!(checked.addr, "8.8.8.8:443".parse().unwrap());
        let allowed = vec!["127.0.0.1".to_owned()];
        assert!(check("http://127.0.0.1:9/hook", &allowed).await.is_ok());
    }
}
