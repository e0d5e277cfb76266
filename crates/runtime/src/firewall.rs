//! vethlab's nftables table (`ip vethlab`) and the host sysctls it needs, applied from a
//! [`FirewallPlan`].
//!
//! The table is replaced as a whole in one nft transaction (`add table; delete table; add table;
//! chains; rules`): atomic, idempotent, and it can never leave a stale rule behind or touch
//! another table. The JSON goes to `nft -j -f -` through the `nftables` crate (an argument
//! vector, no shell), run from a thread inside the host namespace so the `nft` child inherits it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix,
    SetItem,
};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use thiserror::Error;
use vethlab_core::FirewallPlan;
use vethlab_core::firewall::PortForward;

use crate::netns::{Netns, NetnsError};

/// The only table vethlab ever creates or changes.
pub const TABLE: &str = "vethlab";

#[derive(Debug, Error)]
pub enum FirewallError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: nftables table ip {TABLE}: {message}")]
    Nft { netns: String, message: String },
    #[error("netns {netns}: sysctl {name}: {source}")]
    Sysctl { netns: String, name: String, source: std::io::Error },
}

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: Cow::Borrowed(protocol),
        field: Cow::Borrowed(field),
    })))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn matches(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn set(items: impl IntoIterator<Item = String>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(items.into_iter().map(|i| SetItem::Element(s(i))).collect()))
}

fn base_chain(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Default::default()
    })
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        ..Default::default()
    })
}

/// `fib daddr type local [ip daddr HOST_IP] PROTO dport HOST_PORT dnat to IP:PORT`.
fn dnat(f: &PortForward) -> Vec<Statement<'static>> {
    let fib = Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Daddr]),
    }));
    let mut expr = vec![matches(fib, Operator::EQ, s("local"))];
    if let Some(ip) = f.host_ip {
        expr.push(matches(payload("ip", "daddr"), Operator::EQ, s(ip.to_string())));
    }
    let proto: &'static str = match f.proto {
        vethlab_core::Proto::Tcp => "tcp",
        vethlab_core::Proto::Udp => "udp",
    };
    expr.push(matches(payload(proto, "dport"), Operator::EQ, Expression::Number(u32::from(f.host_port))));
    expr.push(Statement::DNAT(Some(NAT {
        addr: Some(s(f.container_ip.to_string())),
        family: None,
        port: Some(Expression::Number(u32::from(f.container_port))),
        flags: None,
    })));
    expr
}

/// The nft batch that makes the table exactly `plan` (or removes it when the plan is empty).
pub fn batch(plan: &FirewallPlan) -> Batch<'static> {
    let table =
        || NfListObject::Table(Table { family: NfFamily::IP, name: Cow::Borrowed(TABLE), handle: None });
    let mut b = Batch::new();
    // Adding first makes the delete succeed whether or not the table exists.
    b.add(table());
    b.delete(table());
    if plan.is_empty() {
        return b;
    }
    b.add(table());
    // Only the chains that will hold rules: an empty base chain still costs a hook per packet.
    if !plan.forwards.is_empty() {
        b.add(base_chain("prerouting", NfChainType::NAT, NfHook::Prerouting, -100));
        b.add(base_chain("output", NfChainType::NAT, NfHook::Output, -100));
    }
    if !plan.masquerade.is_empty() || !plan.localnet.is_empty() {
        b.add(base_chain("postrouting", NfChainType::NAT, NfHook::Postrouting, 100));
    }
    if !plan.isolation.is_empty() || !plan.internal.is_empty() {
        b.add(base_chain("forward", NfChainType::Filter, NfHook::Forward, 0));
    }
    for m in &plan.masquerade {
        let subnet = Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(s(m.subnet.network().to_string())),
            len: u32::from(m.subnet.prefix()),
        }));
        b.add(rule(
            "postrouting",
            vec![
                matches(payload("ip", "saddr"), Operator::EQ, subnet),
                matches(meta(MetaKey::Oifname), Operator::NEQ, s(m.bridge.as_str())),
                Statement::Masquerade(None),
            ],
        ));
    }
    for bridge in &plan.localnet {
        // Connections to 127.0.0.1:HOST_PORT keep their loopback source after DNAT; give them
        // the bridge's address so the container can answer.
        let loopback =
            Expression::Named(NamedExpression::Prefix(Prefix { addr: Box::new(s("127.0.0.0")), len: 8 }));
        b.add(rule(
            "postrouting",
            vec![
                matches(payload("ip", "saddr"), Operator::EQ, loopback),
                matches(meta(MetaKey::Oifname), Operator::EQ, s(bridge.as_str())),
                Statement::Masquerade(None),
            ],
        ));
    }
    for f in &plan.forwards {
        b.add(rule("prerouting", dnat(f)));
        b.add(rule("output", dnat(f)));
    }
    for (bridge, others) in &plan.isolation {
        b.add(rule(
            "forward",
            vec![
                matches(meta(MetaKey::Iifname), Operator::EQ, s(bridge.as_str())),
                matches(meta(MetaKey::Oifname), Operator::EQ, set(others.iter().map(|o| o.to_string()))),
                Statement::Drop(None),
            ],
        ));
    }
    for bridge in &plan.internal {
        for (this, that) in [(MetaKey::Iifname, MetaKey::Oifname), (MetaKey::Oifname, MetaKey::Iifname)] {
            b.add(rule(
                "forward",
                vec![
                    matches(meta(this), Operator::EQ, s(bridge.as_str())),
                    matches(meta(that), Operator::NEQ, s(bridge.as_str())),
                    Statement::Drop(None),
                ],
            ));
        }
    }
    b
}

/// Applies `plan` in `host`: the nft table, `ip_forward` (remembering and restoring the value
/// vethlab found) and `route_localnet` on bridges with published ports.
pub fn apply(host: &Netns, plan: &FirewallPlan, state_dir: &Path) -> Result<(), FirewallError> {
    let json = serde_json::to_string(&batch(plan).to_nftables())
        .map_err(|e| FirewallError::Nft { netns: host.label().into(), message: e.to_string() })?;
    let netns = host.label().to_owned();
    let result = host.run(move || {
        nftables::helper::apply_ruleset_raw(
            &json,
            nftables::helper::DEFAULT_NFT,
            nftables::helper::DEFAULT_ARGS,
        )
    })?;
    result.map_err(|e| FirewallError::Nft { netns: netns.clone(), message: nft_message(e) })?;
    sysctls(host, plan, state_dir)
}

fn nft_message(e: nftables::helper::NftablesError) -> String {
    match e {
        nftables::helper::NftablesError::NftExecution { inner, .. }
            if inner.kind() == std::io::ErrorKind::NotFound =>
        {
            "the nft command is not installed (install nftables, e.g. with ci/install.sh)".into()
        }
        nftables::helper::NftablesError::NftFailed { stderr, .. } => {
            format!("nft refused the transaction: {}", stderr.trim().replace('\n', " "))
        }
        other => other.to_string(),
    }
}

/// `ip_forward` goes on while any network has a way out; the value found before is kept in
/// `STATE/ip_forward.orig` and restored when the last such network goes, so vethlab leaves the
/// host as it found it.
fn sysctls(host: &Netns, plan: &FirewallPlan, state_dir: &Path) -> Result<(), FirewallError> {
    let saved = state_dir.join("ip_forward.orig");
    let want_forward = plan.ip_forward;
    let localnet: Vec<String> = plan.localnet.iter().map(|b| b.to_string()).collect();
    let netns = host.label().to_owned();
    host.run(move || -> Result<(), FirewallError> {
        let err = |name: &str| {
            let netns = netns.clone();
            let name = name.to_owned();
            move |source| FirewallError::Sysctl { netns, name, source }
        };
        let forward = "/proc/sys/net/ipv4/ip_forward";
        let current = std::fs::read_to_string(forward).map_err(err("net.ipv4.ip_forward"))?;
        if want_forward && current.trim() != "1" {
            if !saved.exists() {
                std::fs::write(&saved, current.trim()).map_err(err("net.ipv4.ip_forward (saving)"))?;
            }
            std::fs::write(forward, "1").map_err(err("net.ipv4.ip_forward"))?;
        } else if !want_forward && saved.exists() {
            let orig = std::fs::read_to_string(&saved).map_err(err("net.ipv4.ip_forward (restoring)"))?;
            std::fs::write(forward, orig.trim()).map_err(err("net.ipv4.ip_forward"))?;
            std::fs::remove_file(&saved).map_err(err("net.ipv4.ip_forward (restoring)"))?;
        }
        for bridge in localnet {
            let name = format!("net.ipv4.conf.{bridge}.route_localnet");
            std::fs::write(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), "1")
                .map_err(err(&name))?;
        }
        Ok(())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use vethlab_core::firewall::Masquerade;
    use vethlab_core::{IfName, Proto};

    fn json(plan: &FirewallPlan) -> serde_json::Value {
        serde_json::to_value(batch(plan).to_nftables()).expect("serialisable")
    }

    fn chains(v: &serde_json::Value) -> Vec<String> {
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["add"]["chain"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// No network: the table is removed, idempotently (add then delete), and nothing is created.
    #[test]
    fn empty_plan_only_removes_the_table() {
        let v = json(&FirewallPlan::default());
        let cmds = v["nftables"].as_array().expect("array");
        assert_eq!(cmds.len(), 2, "{v}");
        assert_eq!(cmds[0]["add"]["table"]["name"], TABLE);
        assert_eq!(cmds[1]["delete"]["table"]["name"], TABLE);
    }

    /// The table is replaced whole, only the chains that hold rules exist, and every object is in
    /// vethlab's table: nothing else on the machine is touched.
    #[test]
    fn plan_becomes_one_replacing_transaction_in_our_table_only() {
        let br = IfName::new("zdocker0").expect("name");
        let plan = FirewallPlan {
            masquerade: vec![Masquerade {
                subnet: "192.168.1.0/24".parse().expect("subnet"),
                bridge: br.clone(),
            }],
            forwards: vec![vethlab_core::firewall::PortForward {
                host_ip: None,
                host_port: 8080,
                proto: Proto::Udp,
                container_ip: "192.168.1.2".parse().expect("ip"),
                container_port: 80,
                bridge: br.clone(),
            }],
            localnet: vec![br],
            ip_forward: true,
            ..FirewallPlan::default()
        };
        let v = json(&plan);
        let cmds = v["nftables"].as_array().expect("array");
        assert_eq!(cmds[0]["add"]["table"]["name"], TABLE);
        assert_eq!(cmds[1]["delete"]["table"]["name"], TABLE);
        assert_eq!(cmds[2]["add"]["table"]["name"], TABLE);
        assert_eq!(chains(&v), ["prerouting", "output", "postrouting"], "no forward chain without isolation");
        for cmd in &cmds[2..] {
            let obj = cmd["add"].as_object().and_then(|o| o.values().next()).expect("an add");
            let table = obj.get("table").or_else(|| obj.get("name")).and_then(|t| t.as_str());
            assert_eq!(table, Some(TABLE), "{cmd}");
        }
        let text = v.to_string();
        assert!(text.contains(r#""dnat":{"addr":"192.168.1.2","port":80}"#), "{text}");
        assert!(text.contains(r#""payload":{"field":"dport","protocol":"udp"}"#), "{text}");
        assert_eq!(text.matches(r#""masquerade""#).count(), 2, "subnet and loopback masquerade: {text}");
    }
}
