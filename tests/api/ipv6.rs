//! IPv6 clients share one bucket per `WARDEN_IPV6_PREFIX` network in every
//! limit: an IPv6 subscriber or cloud server holds a whole /64, so keyed by
//! address it could look like 2^64 clients.

use std::{net::IpAddr, process::Command, time::Duration};

use serde_json::{json, Value};

use crate::helpers::{code, email, spawn_app_with, TestApp};

const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";

/// A wrong-password login for a fresh email (so no lockout counter is
/// shared), sent through a trusted proxy that names `client`.
async fn login_as(app: &TestApp, client: &str) -> Value {
    app.gql_with_headers(
        None,
        LOGIN,
        json!({ "i": { "email": email(), "password": "not the password 9" } }),
        &[("x-forwarded-for", client.to_owned())],
    )
    .await
}

/// Counts (admitted, refused) of `logins` behind a proxy, one address each.
async fn spread_logins(app: &TestApp, addresses: &[String]) -> (usize, usize) {
    let (mut admitted, mut refused) = (0, 0);
    for address in addresses {
        let body = login_as(app, address).await;
        match code(&body) {
            Some("INVALID_CREDENTIALS") => admitted += 1,
            Some("RATE_LIMITED") => refused += 1,
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    (admitted, refused)
}

/// 30 addresses spread over one /64 (different interface ids and subnets
/// of the lower bits).
fn one_64() -> Vec<String> {
    (0..30u32)
        .map(|i| {
            format!(
                "2001:db8:1:2:{:x}:{:x}::{:x}",
                (i * 7919) % 0x10000,
                i * 31,
                i + 1
            )
        })
        .collect()
}

fn behind_local_proxy(config: &mut warden::config::Config, prefix: u8) {
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.rates.rate_login_ip = "10/min".parse().unwrap();
    config.ipv6_prefix = prefix;
}

#[tokio::test]
async fn thirty_addresses_of_one_ipv6_64_share_one_login_quota() {
    let app = spawn_app_with(|c| behind_local_proxy(c, 64)).await;
    let (admitted, refused) = spread_logins(&app, &one_64()).await;
    assert_eq!(
        (admitted, refused),
        (10, 20),
        "one /64 got more than the per-IP quota"
    );
    // A client in the next /64 is another client, with its own quota; so is an IPv4 one.
    assert_eq!(
        code(&login_as(&app, "2001:db8:1:3::1").await),
        Some("INVALID_CREDENTIALS")
    );
    assert_eq!(
        code(&login_as(&app, "198.51.100.7").await),
        Some("INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn the_ipv6_prefix_is_configurable() {
    // /128: each address is its own client again (for networks that hand
    // out single addresses), so all 30 are admitted.
    let app = spawn_app_with(|c| behind_local_proxy(c, 128)).await;
    assert_eq!(spread_logins(&app, &one_64()).await, (30, 0));
    // /48: the whole site is one client, across its /64s.
    let app = spawn_app_with(|c| behind_local_proxy(c, 48)).await;
    let site: Vec<String> = (0..12u32)
        .map(|i| format!("2001:db8:1:{:x}::1", i + 2))
        .collect();
    assert_eq!(spread_logins(&app, &site).await, (10, 2));
}

/// Real sockets: twelve source addresses of one /64 on the loopback
/// interface (added here when the test may, as root in CI does), straight
/// to the server with no proxy in between.
#[tokio::test]
async fn real_ipv6_peers_of_one_64_share_one_login_quota() {
    let Some(addresses) = loopback_addresses("fd00:7761:6172:6465", 12) else {
        eprintln!("skipped: cannot add IPv6 addresses to lo here (not root, or no `ip`)");
        return;
    };
    let app = spawn_app_with(|c| {
        c.listen = "[::]:0".parse().unwrap();
        c.rates.rate_login_ip = "10/min".parse().unwrap();
    })
    .await;
    let port = app
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap();
    let (mut admitted, mut refused) = (0, 0);
    for source in &addresses {
        let client = reqwest::Client::builder()
            .local_address(*source)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .post(format!("http://[{}]:{port}/graphql", addresses[0]))
            .json(&json!({ "query": LOGIN, "variables": { "i": { "email": email(), "password": "not the password 9" } } }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        match code(&body) {
            Some("INVALID_CREDENTIALS") => admitted += 1,
            Some("RATE_LIMITED") => refused += 1,
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert_eq!((admitted, refused), (10, 2));
}

/// `count` addresses `{net}::N/128` on `lo`, adding those missing; `None`
/// when they cannot be added.
fn loopback_addresses(net: &str, count: u16) -> Option<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    for n in 1..=count {
        let address: IpAddr = format!("{net}::{n:x}").parse().ok()?;
        let added = Command::new("ip")
            .args(["-6", "addr", "add", &format!("{address}/128"), "dev", "lo"])
            .output()
            .ok()?;
        let stderr = String::from_utf8_lossy(&added.stderr);
        let exists = stderr.contains("exists") || stderr.contains("already assigned");
        if !added.status.success() && !exists {
            return None;
        }
        addresses.push(address);
    }
    // Freshly added addresses go through duplicate address detection
    // first; on loopback it is immediate, but wait until they bind.
    for address in &addresses {
        let mut bound = false;
        for _ in 0..50 {
            if std::net::TcpListener::bind((*address, 0)).is_ok() {
                bound = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !bound {
            return None;
        }
    }
    Some(addresses)
}
