//! The client's address (`ClientIp`): the socket's peer, unless that peer is a trusted proxy
//! (`limits.ip.trusted_proxies`); then the last address in `X-Forwarded-For` that is not
//! itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::api::AppState;

/// Where a request comes from, as the per-IP limit and the audit trail see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The peer, or what trusted proxies say the client is.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> Self {
        if !trusted.contains(&peer) {
            return Self(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        Self(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted.contains(ip))
                .unwrap_or(peer),
        )
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<AppState>>::Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        Ok(Self::resolve(
            peer.ip(),
            &parts.headers,
            &state.settings.limits.ip.trusted_proxies,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.2, 10.0.0.1".parse().unwrap(),
        );
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(
            ClientIp::resolve(stranger, &headers, &[proxy]),
            ClientIp(stranger)
        );
        // Through the trusted proxy: the last address it did not add itself.
        assert_eq!(
            ClientIp::resolve(proxy, &headers, &[proxy]),
            ClientIp("198.51.100.2".parse().unwrap())
        );
        // Garbage in the header falls back to the peer.
        headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(
            ClientIp::resolve(proxy, &headers, &[proxy]),
            ClientIp(proxy)
        );
    }
}
