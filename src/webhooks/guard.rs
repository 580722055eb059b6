//! The SSRF guard for callback URLs: https only (http just for allow-listed hosts), and every
//! address the host resolves to must be globally reachable unless the host is allow-listed:
//! every range the IANA IPv4 and IPv6 special-purpose registries mark as not globally
//! reachable is refused, as are IPv6 forms that carry an IPv4 address inside (NAT64 of an
//! internal address, 6to4, Teredo, IPv4-compatible and -mapped). The delivery connects to the
//! address that was checked, so a second DNS answer cannot redirect it; the lookup has a
//! deadline, so a slow resolver cannot hold a request or a worker.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// The longest a callback host's DNS lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A callback URL whose form passed the guard (scheme, credentials, an IP literal's range);
/// its host is not resolved yet.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub url: Url,
    host: String,
    port: u16,
    allowed: bool,
}

/// A callback URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: Url,
    pub addr: SocketAddr,
}

/// The whole guard: form, then the host's addresses.
pub async fn check(raw: &str, allow_hosts: &[String]) -> Result<Checked, String> {
    resolve(parse(raw, allow_hosts)?).await
}

/// The checks that need no DNS: cheap enough to run before a request is admitted.
pub fn parse(raw: &str, allow_hosts: &[String]) -> Result<Parsed, String> {
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
    if !allowed
        && let Ok(ip) = host.parse::<IpAddr>()
        && let Some(range) = internal_range(ip)
    {
        return Err(format!("`{host}` is an internal address ({range})"));
    }
    Ok(Parsed {
        url,
        host,
        port,
        allowed,
    })
}

/// Resolves the host (within [`LOOKUP_TIMEOUT`]) and checks every address it has.
pub async fn resolve(parsed: Parsed) -> Result<Checked, String> {
    let Parsed {
        url,
        host,
        port,
        allowed,
    } = parsed;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((host.as_str(), port));
            match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Err(_) => {
                    return Err(format!(
                        "the host `{host}` did not resolve within {} s",
                        LOOKUP_TIMEOUT.as_secs()
                    ));
                }
                Ok(found) => found
                    .map_err(|err| format!("the host `{host}` does not resolve ({err})"))?
                    .collect(),
            }
        }
    };
    let first = *addrs
        .first()
        .ok_or_else(|| format!("the host `{host}` has no address"))?;
    if !allowed
        && let Some((bad, range)) = addrs
            .iter()
            .find_map(|a| internal_range(a.ip()).map(|range| (a.ip(), range)))
    {
        return Err(format!(
            "`{host}` resolves to {bad}, an internal address ({range})"
        ));
    }
    Ok(Checked { url, addr: first })
}

/// Whether an address is anything but globally reachable.
pub fn is_internal(ip: IpAddr) -> bool {
    internal_range(ip).is_some()
}

/// IPv4 ranges that are not globally reachable: the IANA IPv4 Special-Purpose Address Registry
/// (RFC 6890 and its updates), plus multicast. `192.0.0.0/24` is refused whole (its two
/// anycast /32s are no webhook receivers).
const V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\", RFC 791"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private, RFC 1918"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space, RFC 6598",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback, RFC 1122"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local, RFC 3927"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private, RFC 1918"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments, RFC 6890",
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation, RFC 5737"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "6to4 relay anycast, RFC 7526",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private, RFC 1918"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking, RFC 2544"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation, RFC 5737",
    ),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation, RFC 5737"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast, RFC 5771"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved, RFC 1112"),
    (
        Ipv4Addr::new(255, 255, 255, 255),
        32,
        "limited broadcast, RFC 919",
    ),
];

/// How an IPv6 range is judged.
#[derive(Clone, Copy)]
enum V6Rule {
    /// Refused whole.
    Refuse,
    /// NAT64 (RFC 6052): the IPv4 address in the last 32 bits decides.
    Embedded,
}

/// IPv6 ranges that are not globally reachable, or that carry an IPv4 address: the IANA IPv6
/// Special-Purpose Address Registry (RFC 6890 and its updates), plus multicast and the
/// deprecated site-local and IPv4-compatible forms. `2001::/23` is refused whole (its few
/// global exceptions are anycast and ORCHID, no webhook receivers).
const V6: &[(u128, u8, V6Rule, &str)] = &[
    (
        0,
        96,
        V6Rule::Refuse,
        "unspecified, loopback or IPv4-compatible, RFC 4291",
    ),
    (
        0xffff_0000_0000,
        96,
        V6Rule::Refuse,
        "IPv4-mapped, RFC 4291",
    ),
    (
        0xffff_0000_0000_0000,
        96,
        V6Rule::Refuse,
        "IPv4-translated, RFC 2765",
    ),
    (0x0064_ff9b << 96, 96, V6Rule::Embedded, "NAT64, RFC 6052"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        V6Rule::Refuse,
        "local-use NAT64, RFC 8215",
    ),
    (0x0100 << 112, 64, V6Rule::Refuse, "discard-only, RFC 6666"),
    (
        0x2001 << 112,
        23,
        V6Rule::Refuse,
        "IETF protocol assignments (Teredo, benchmarking, ORCHID), RFC 2928",
    ),
    (
        0x2001_0db8 << 96,
        32,
        V6Rule::Refuse,
        "documentation, RFC 3849",
    ),
    (0x2002 << 112, 16, V6Rule::Refuse, "6to4, RFC 3056"),
    (0x3fff << 112, 20, V6Rule::Refuse, "documentation, RFC 9637"),
    (
        0x5f00 << 112,
        16,
        V6Rule::Refuse,
        "segment routing SIDs, RFC 9602",
    ),
    (0xfc00 << 112, 7, V6Rule::Refuse, "unique local, RFC 4193"),
    (0xfe80 << 112, 10, V6Rule::Refuse, "link-local, RFC 4291"),
    (
        0xfec0 << 112,
        10,
        V6Rule::Refuse,
        "site-local (deprecated), RFC 3879",
    ),
    (0xff00 << 112, 8, V6Rule::Refuse, "multicast, RFC 4291"),
];

/// The special-purpose range `ip` falls in, when it is not globally reachable.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            V4.iter()
                .find(|(net, len, _)| {
                    bits >> (32 - u32::from(*len)) == u32::from(*net) >> (32 - u32::from(*len))
                })
                .map(|(_, _, name)| *name)
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let (_, _, rule, name) = V6.iter().find(|(net, len, _, _)| {
                bits >> (128 - u32::from(*len)) == net >> (128 - u32::from(*len))
            })?;
            match rule {
                V6Rule::Refuse => Some(name),
                V6Rule::Embedded => {
                    let inner = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
                    internal_range(IpAddr::V4(inner)).map(|_| *name)
                }
            }
        }
    }
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

    /// Each special-purpose range: an address inside is refused (the edges included), the
    /// first address past it is not (where that one is public).
    #[test]
    fn every_special_purpose_range_is_refused_and_its_neighbours_are_not() {
        let refused = [
            "0.1.2.3",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.1.2.3",
            "64:ff9b::7f00:1",
            "64:ff9b:1::8.8.8.8",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:a9fe:a9fe::1",
            "2002:808:808::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
        ];
        for ip in refused {
            assert!(is_internal(ip.parse().unwrap()), "{ip} must be refused");
        }
        let public = [
            "1.0.0.1",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "128.0.0.1",
            "169.255.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "64:ff9b::808:808",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2003::1",
            "2606:4700::1111",
            "2a00:1450::1",
        ];
        for ip in public {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} must be allowed");
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
        assert!(
            parse("https://[64:ff9b::a9fe:a9fe]/hook", &none)
                .unwrap_err()
                .contains("NAT64")
        );
        let checked = check("https://8.8.8.8/hook", &none).await.unwrap();
        assert_eq!(checked.addr, "8.8.8.8:443".parse().unwrap());
        let allowed = vec!["127.0.0.1".to_owned()];
        assert!(check("http://127.0.0.1:9/hook", &allowed).await.is_ok());
    }
}
