//! The PROXY protocol header, version 2 (HAProxy's proxy-protocol.txt, section 2.2), that a `-d` end
//! with `--proxy-protocol` writes to its target before any data, so that a PROXY-aware service sees
//! the address of the peer that connected to the `-d` end instead of the `-d` end's own. I/O-free:
//! addresses in, bytes out.
//!
//! The binary header is a 12-byte signature, a version and command byte, a family and transport byte,
//! the length of what follows (big-endian), then the addresses: source address, destination address,
//! source port, destination port, all in network byte order.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Where a connection came from, as the `-d` end's accepted socket knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A TCP connection: sent with the PROXY command, as TCP over IPv4 or IPv6.
    Tcp {
        /// The address of the peer that connected to the `-d` end: the header's source.
        peer: SocketAddr,
        /// The `-d` end's own address of the accepted socket: the header's destination.
        local: SocketAddr,
    },
    /// No address to tell: a unix-socket source, or a socket whose addresses could not be read. Sent
    /// as the LOCAL command, with which the receiver uses the connection's own endpoints (those of the
    /// `-d` end's connection to it), as without a header. A unix source is not sent as AF_UNIX: its
    /// peer is almost always unnamed, and receivers refuse that family (HAProxy 2.6 drops such a
    /// connection as "an invalid PROXY protocol header"); HAProxy's own sender sends LOCAL for it too.
    Unknown,
}

/// The first 12 bytes of every version 2 header; its null byte and CR LF pairs make it unlike the
/// start of any common protocol.
pub const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// Version 2, in the high four bits of the 13th byte.
const VERSION: u8 = 0x20;

/// Command (low four bits of the 13th byte): a connection the proxy made on its own behalf; the
/// receiver uses the real endpoints and ignores the family.
const COMMAND_LOCAL: u8 = 0x0;

/// Command: a connection relayed for another node, whose endpoints the address block gives.
const COMMAND_PROXY: u8 = 0x1;

/// Family and transport (the 14th byte): unspecified, with no addresses; what LOCAL is sent with.
const UNSPEC: u8 = 0x00;

/// Family and transport: TCP over IPv4 (AF_INET, STREAM).
const TCP_OVER_IPV4: u8 = 0x11;

/// Family and transport: TCP over IPv6 (AF_INET6, STREAM).
const TCP_OVER_IPV6: u8 = 0x21;

/// Bytes before the address block: signature, version and command, family and transport, length.
pub const FIXED_LEN: usize = 16;

/// The IPv4 address block: two 4-byte addresses and two 2-byte ports.
const IPV4_BLOCK_LEN: u16 = 2 * 4 + 2 * 2;

/// The IPv6 address block: two 16-byte addresses and two 2-byte ports.
const IPV6_BLOCK_LEN: u16 = 2 * 16 + 2 * 2;

/// The longest header this module writes (TCP over IPv6). The specification keeps every header within
/// the 536 bytes any TCP segment may carry, so a header written at once arrives at once.
pub const MAX_LEN: usize = FIXED_LEN + IPV6_BLOCK_LEN as usize;

/// The header for a connection from `origin`.
///
/// TCP addresses are sent as IPv4 when both are IPv4, including IPv4-mapped IPv6 addresses (a
/// dual-stack listener's view of an IPv4 peer), and as IPv6 otherwise, an IPv4 address among them
/// written IPv4-mapped.
pub fn encode(origin: Origin) -> Vec<u8> {
    let mut header = Vec::with_capacity(MAX_LEN);
    header.extend_from_slice(&SIGNATURE);
    let Origin::Tcp { peer, local } = origin else {
        header.extend_from_slice(&[VERSION | COMMAND_LOCAL, UNSPEC]);
        header.extend_from_slice(&0u16.to_be_bytes());
        return header;
    };
    header.push(VERSION | COMMAND_PROXY);
    match (peer.ip().to_canonical(), local.ip().to_canonical()) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            header.push(TCP_OVER_IPV4);
            header.extend_from_slice(&IPV4_BLOCK_LEN.to_be_bytes());
            header.extend_from_slice(&source.octets());
            header.extend_from_slice(&destination.octets());
        }
        (source, destination) => {
            header.push(TCP_OVER_IPV6);
            header.extend_from_slice(&IPV6_BLOCK_LEN.to_be_bytes());
            header.extend_from_slice(&as_ipv6(source).octets());
            header.extend_from_slice(&as_ipv6(destination).octets());
        }
    }
    header.extend_from_slice(&peer.port().to_be_bytes());
    header.extend_from_slice(&local.port().to_be_bytes());
    header
}

/// An address as IPv6: IPv4 ones IPv4-mapped.
fn as_ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's length field: the bytes after the fixed part.
    fn length_field(header: &[u8]) -> usize {
        usize::from(u16::from_be_bytes([header[14], header[15]]))
    }

    fn tcp(peer: &str, local: &str) -> Origin {
        Origin::Tcp { peer: peer.parse().unwrap(), local: local.parse().unwrap() }
    }

    /// The specification's example connection (section 2.1: `PROXY TCP4 192.168.0.1 192.168.0.11
    /// 56324 443`), in the binary format of section 2.2, byte by byte.
    #[test]
    fn the_specifications_ipv4_example() {
        let expected: &[u8] = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\
            \x21\
            \x11\
            \x00\x0C\
            \xC0\xA8\x00\x01\
            \xC0\xA8\x00\x0B\
            \xDC\x04\
            \x01\xBB";
        assert_eq!(encode(tcp("192.168.0.1:56324", "192.168.0.11:443")), expected);
    }

    /// TCP over IPv6: version 2 PROXY (\x21), \x21 again for AF_INET6 and STREAM, 36 address bytes.
    #[test]
    fn tcp_over_ipv6() {
        let expected: &[u8] = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\
            \x21\
            \x21\
            \x00\x24\
            \x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\
            \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\
            \xDC\x04\
            \x18\xEB";
        assert_eq!(encode(tcp("[2001:db8::1]:56324", "[::1]:6379")), expected);
    }

    /// The LOCAL command with the unspecified family and no address: 16 bytes, the length field zero.
    #[test]
    fn unknown_is_local_with_no_address() {
        let expected: &[u8] = b"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x20\x00\x00\x00";
        assert_eq!(encode(Origin::Unknown), expected);
    }

    /// A dual-stack listener sees an IPv4 peer as `::ffff:a.b.c.d`: a receiver should see IPv4.
    #[test]
    fn ipv4_mapped_addresses_are_sent_as_ipv4() {
        let mapped = encode(tcp("[::ffff:192.168.0.1]:56324", "[::ffff:192.168.0.11]:443"));
        assert_eq!(mapped, encode(tcp("192.168.0.1:56324", "192.168.0.11:443")));
    }

    /// One socket cannot have addresses of two families, but the function takes any pair: the IPv4
    /// one goes IPv4-mapped into an IPv6 header.
    #[test]
    fn mixed_families_are_sent_as_ipv6() {
        let header = encode(tcp("192.168.0.1:56324", "[2001:db8::11]:443"));
        assert_eq!(header[13], TCP_OVER_IPV6);
        let mapped: Ipv6Addr = "::ffff:192.168.0.1".parse().unwrap();
        assert_eq!(header[16..32], mapped.octets());
        assert_eq!(header[48..52], [0xDC, 0x04, 0x01, 0xBB]);
    }

    /// What a receiver checks first (section 2.2): the signature and version 2 in the 13th byte's
    /// high bits, then a length that is exactly the rest of the header; and no header is longer than
    /// the 536 bytes the specification keeps every header within.
    #[test]
    fn every_header_has_the_signature_version_2_and_its_own_length() {
        for origin in [
            tcp("192.168.0.1:1", "10.0.0.1:2"),
            tcp("[2001:db8::1]:1", "[2001:db8::2]:2"),
            tcp("[::1]:65535", "[::ffff:127.0.0.1]:0"),
            Origin::Unknown,
        ] {
            let header = encode(origin);
            assert_eq!(header[..12], SIGNATURE, "{origin:?}");
            assert_eq!(header[12] & 0xF0, 0x20, "{origin:?}");
            assert_eq!(FIXED_LEN + length_field(&header), header.len(), "{origin:?}");
            assert!(header.len() <= MAX_LEN && MAX_LEN <= 536, "{origin:?}");
        }
    }
}
