//! The authoritative DNS server, asked with `dig` over UDP and TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use crate::harness::{Options, Server, free_port, loopback, require_cmd};

fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn short(server: SocketAddr, args: &[&str]) -> String {
    let mut a = args.to_vec();
    a.push("+short");
    dig(server, &a).trim().to_string()
}

fn status_of(answer: &str) -> &str {
    answer
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("<no status>")
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_answers_for_the_zone_over_udp_and_tcp() {
    require_cmd("dig", "bind9-dnsutils");
    let server = Server::start_with(
        Options::default()
            .env("DEMIURGE_SERVER__DOMAIN", "demiurge.test")
            .env("DEMIURGE_DNS__PUBLIC_IPV4", "192.0.2.10"),
    );
    let dns = server.dns.unwrap();

    assert_eq!(short(dns, &["demiurge.test", "A"]), "192.0.2.10");
    assert_eq!(
        short(dns, &["foo.containers.demiurge.test", "A"]),
        "192.0.2.10"
    );
    assert_eq!(
        short(dns, &["+tcp", "bar-1.containers.demiurge.test", "A"]),
        "192.0.2.10"
    );
    assert_eq!(short(dns, &["demiurge.test", "NS"]), "ns1.demiurge.test.");
    assert_eq!(short(dns, &["ns1.demiurge.test", "A"]), "192.0.2.10");
    let soa = short(dns, &["demiurge.test", "SOA"]);
    assert!(
        soa.starts_with("ns1.demiurge.test. hostmaster.demiurge.test. "),
        "{soa}"
    );

    let full = dig(dns, &["demiurge.test", "A"]);
    assert!(
        full.contains(" aa"),
        "authoritative answer expected:\n{full}"
    );

    let nx = dig(dns, &["nope.demiurge.test", "A"]);
    assert_eq!(status_of(&nx), "NXDOMAIN", "{nx}");
    let nx_tcp = dig(dns, &["+tcp", "deeper.nope.demiurge.test", "A"]);
    assert_eq!(status_of(&nx_tcp), "NXDOMAIN", "{nx_tcp}");

    let refused = dig(dns, &["example.com", "A"]);
    assert_eq!(status_of(&refused), "REFUSED", "{refused}");
}

/// Records changed at runtime are answered at once (containers and ACME rely on this).
#[tokio::test(flavor = "multi_thread")]
async fn records_change_at_runtime() {
    require_cmd("dig", "bind9-dnsutils");
    let addr = loopback(free_port());
    let dns = demiurge::dns::Dns::start(addr, "runtime.test", Ipv4Addr::new(192, 0, 2, 1))
        .await
        .unwrap();
    let a = dns.addr();
    let ask = move |args: Vec<&'static str>| tokio::task::spawn_blocking(move || short(a, &args));
    let zone = dns.zone();

    assert_eq!(ask(vec!["svc.runtime.test", "A"]).await.unwrap(), "");
    zone.set_a("svc.runtime.test", Ipv4Addr::new(192, 0, 2, 77))
        .await
        .unwrap();
    assert_eq!(
        ask(vec!["svc.runtime.test", "A"]).await.unwrap(),
        "192.0.2.77"
    );
    zone.set_a("svc.runtime.test", Ipv4Addr::new(192, 0, 2, 78))
        .await
        .unwrap();
    assert_eq!(
        ask(vec!["svc.runtime.test", "A"]).await.unwrap(),
        "192.0.2.78"
    );

    zone.add_txt("_acme-challenge.runtime.test", "token-1")
        .await
        .unwrap();
    zone.add_txt("_acme-challenge.runtime.test", "token-2")
        .await
        .unwrap();
    let mut txt: Vec<String> = ask(vec!["_acme-challenge.runtime.test", "TXT"])
        .await
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    txt.sort();
    assert_eq!(txt, ["\"token-1\"", "\"token-2\""]);
    // One value goes (an ACME challenge cleaned up), the other stays.
    zone.remove_txt("_acme-challenge.runtime.test", "token-1")
        .await
        .unwrap();
    assert_eq!(
        ask(vec!["_acme-challenge.runtime.test", "TXT"])
            .await
            .unwrap(),
        "\"token-2\""
    );
    zone.remove(
        "_acme-challenge.runtime.test",
        demiurge::dns::RecordType::TXT,
    )
    .await
    .unwrap();
    assert_eq!(
        ask(vec!["_acme-challenge.runtime.test", "TXT"])
            .await
            .unwrap(),
        ""
    );

    assert!(
        zone.set_a("outside.example.com", Ipv4Addr::LOCALHOST)
            .await
            .is_err()
    );
    dns.stop().await;
}
