//! `--network user`: QEMU's user-mode network (slirp: no root, no host
//! interface; the guest reaches what the host reaches) with `--forward`ed
//! ports, and the static configuration kdf-init gives the guest's side. The
//! addresses are QEMU's defaults, spelled out so both sides agree.

/// The guest's subnet, its prefix length, QEMU's host and DNS relay
/// addresses on it, and the guest's own address.
pub const SUBNET: [u8; 4] = [10, 0, 2, 0];
pub const PREFIX_LEN: u8 = 24;
pub const HOST: [u8; 4] = [10, 0, 2, 2];
pub const DNS: [u8; 4] = [10, 0, 2, 3];
pub const GUEST: [u8; 4] = [10, 0, 2, 15];

/// A host port on 127.0.0.1 that QEMU forwards to a guest port (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

/// Parses `--forward HOSTPORT:GUESTPORT`.
pub fn parse_forward(s: &str) -> Result<Forward, String> {
    let (host, guest) = s.split_once(':').ok_or_else(|| format!("expected HOSTPORT:GUESTPORT, got {s:?}"))?;
    let port = |p: &str, which: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{which} port {p:?} is not a port number (1-65535)")),
        Ok(n) => Ok(n),
    };
    Ok(Forward { host: port(host, "the host")?, guest: port(guest, "the guest")? })
}

/// The forwards of one run: a host port can be forwarded once.
pub fn check_forwards(forwards: &[Forward]) -> Result<(), String> {
    for (i, f) in forwards.iter().enumerate() {
        if forwards[..i].iter().any(|g| g.host == f.host) {
            return Err(format!("host port {} is forwarded twice", f.host));
        }
    }
    Ok(())
}

/// QEMU's user network with its forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNet {
    pub forwards: Vec<Forward>,
}

fn dotted([a, b, c, d]: [u8; 4]) -> String {
    format!("{a}.{b}.{c}.{d}")
}

/// `-netdev`'s value: the network, and each forward bound to the host's
/// loopback only (`hostfwd=tcp:127.0.0.1:H-:G`; the guest address is QEMU's
/// default, the first DHCP address, which is the one kdf-init configures).
pub fn netdev(net: &UserNet, id: &str) -> String {
    let mut arg =
        format!("user,id={id},net={}/{PREFIX_LEN},host={},dns={}", dotted(SUBNET), dotted(HOST), dotted(DNS));
    for f in &net.forwards {
        arg.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-{}:{}", f.host, dotted(GUEST), f.guest));
    }
    arg
}

/// What kdf-init configures in the guest.
pub fn guest_config() -> kdf_proto::Network {
    kdf_proto::Network { address: GUEST, prefix_len: PREFIX_LEN, gateway: HOST, nameserver: DNS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse_and_refuse_what_is_not_a_port() {
        assert_eq!(parse_forward("8080:80"), Ok(Forward { host: 8080, guest: 80 }));
        for bad in ["8080", "0:80", "80:0", "65536:1", "a:b", ":80", "80:", "1:2:3"] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
        let twice = [Forward { host: 1, guest: 2 }, Forward { host: 1, guest: 3 }];
        assert!(check_forwards(&twice).unwrap_err().contains("host port 1"));
        assert!(check_forwards(&[Forward { host: 1, guest: 2 }, Forward { host: 3, guest: 2 }]).is_ok());
    }

    #[test]
    fn the_netdev_pins_the_addresses_and_binds_forwards_to_loopback() {
        let net =
            UserNet { forwards: vec![Forward { host: 8080, guest: 80 }, Forward { host: 2222, guest: 22 }] };
        assert_eq!(
            netdev(&net, "net0"),
            "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,\
             hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22"
        );
    }

    #[test]
    fn the_guest_is_configured_on_the_same_network() {
        let g = guest_config();
        assert_eq!((g.address, g.prefix_len, g.gateway, g.nameserver), (GUEST, 24, HOST, DNS));
        let mask = u32::MAX << (32 - PREFIX_LEN);
        assert_eq!(u32::from_be_bytes(GUEST) & mask, u32::from_be_bytes(SUBNET));
    }
}
