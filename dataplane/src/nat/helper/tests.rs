//! The helpers inside a [`WorkerNat`]: real IPv4/TCP/UDP packets through
//! `helper_packet`, expectations through `create_expected`, the life of data sessions.

use super::super::blocks::{BlockInfo, BlockQuery};
use super::super::tcp::{ACK, SYN};
use super::super::*;
use super::*;
use crate::packet::ipv4::Ipv4Packet;
use crate::packet::tcp::TcpPacket;
use crate::packet::udp::UdpPacket;
use std::sync::Arc;

const EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const T0: Instant = Instant::from_secs(1000);

fn client() -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, 2)
}

fn server() -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 7)
}

fn nat_with(f: impl FnOnce(&mut NatConfig)) -> WorkerNat {
    let mut c = NatConfig::new(vec![EXT], 0, 1);
    c.max_sessions = 1024;
    c.seed = 7;
    // Port-dependent filtering: only an expectation lets a data connection in.
    c.filtering = Filtering::AddressPortDependent;
    c.helpers.push(HelperPort::new(HelperKind::Irc, 6667));
    f(&mut c);
    WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap()
}

fn nat() -> WorkerNat {
    nat_with(|_| {})
}

/// An IPv4/TCP packet with both checksums computed in full, in a buffer with `room`
/// spare bytes after it.
fn tcp_pkt(src: Endpoint, dst: Endpoint, seq: u32, ack: u32, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let thl = 20 + opts.len();
    assert_eq!(thl % 4, 0);
    let len = 20 + thl + payload.len();
    let mut b = vec![0u8; len];
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[8] = 64;
    b[9] = 6;
    b[12..16].copy_from_slice(&src.addr.octets());
    b[16..20].copy_from_slice(&dst.addr.octets());
    let t = &mut b[20..];
    t[0..2].copy_from_slice(&src.port.to_be_bytes());
    t[2..4].copy_from_slice(&dst.port.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((thl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t[20..thl].copy_from_slice(opts);
    t[thl..].copy_from_slice(payload);
    TcpPacket::new_unchecked(&mut b[20..]).fill_checksum(src.addr, dst.addr);
    Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    b
}

fn udp_pkt(src: Endpoint, dst: Endpoint, payload: &[u8]) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut b = vec![0u8; len];
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[8] = 64;
    b[9] = 17;
    b[12..16].copy_from_slice(&src.addr.octets());
    b[16..20].copy_from_slice(&dst.addr.octets());
    b[20..22].copy_from_slice(&src.port.to_be_bytes());
    b[22..24].copy_from_slice(&dst.port.to_be_bytes());
    b[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    b[28..].copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut b[20..]).fill_checksum(src.addr, dst.addr);
    Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    b
}

/// Run `pkt` through the helper stage with `room` bytes to grow; returns the packet as
/// it leaves, after checking its length field and both checksums.
fn helper(nat: &mut WorkerNat, id: SessionId, dir: Dir, pkt: &[u8], room: usize, now: Instant) -> Vec<u8> {
    let mut buf = pkt.to_vec();
    buf.resize(pkt.len() + room, 0xee);
    let n = nat.helper_packet(id, dir, &mut buf, pkt.len(), now);
    buf.truncate(n);
    let ip = Ipv4Packet::new_checked(&buf[..]).expect("valid IPv4");
    assert_eq!(usize::from(ip.total_len()), n);
    assert!(ip.verify_checksum(), "IPv4 checksum");
    if buf[9] == 6 {
        assert!(TcpPacket::new_unchecked(&buf[20..]).verify_checksum(ip.src_addr(), ip.dst_addr()), "TCP checksum");
    }
    buf
}

fn payload(pkt: &[u8]) -> &[u8] {
    let thl = usize::from(pkt[32] >> 4) * 4;
    &pkt[20 + thl..]
}

fn seq_of(pkt: &[u8]) -> u32 {
    u32::from_be_bytes([pkt[24], pkt[25], pkt[26], pkt[27]])
}

fn ack_of(pkt: &[u8]) -> u32 {
    u32::from_be_bytes([pkt[28], pkt[29], pkt[30], pkt[31]])
}

/// A client inside talking to an FTP server outside: the control session, SYN seen.
fn active_ftp(nat: &mut WorkerNat) -> (SessionId, Endpoint, Endpoint, Endpoint) {
    let c = Endpoint::new(client(), 1030);
    let s = Endpoint::new(server(), 21);
    let t = Tuple::new(c, s, Proto::Tcp);
    let id = nat.create(&t, NatAction::Masquerade, SYN, T0).unwrap();
    let sess = *nat.session(id).unwrap().session;
    assert_eq!(nat.helper_for(&sess), Some(HelperKind::Ftp));
    assert!(nat.attach_helper(id, HelperKind::Ftp));
    assert!(nat.session(id).unwrap().has_helper());
    helper(nat, id, Dir::In2Out, &tcp_pkt(c, s, 999, 0, SYN, &[], b""), 64, T0);
    (id, c, s, sess.outside())
}

#[test]
fn active_ftp_port_is_rewritten_and_the_data_connection_admitted() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    let port = b"PORT 100,64,0,2,156,64\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 5000, ACK | 0x08, &[], port), 64, T0);
    let text = String::from_utf8(payload(&out).to_vec()).unwrap();
    let exp = nat.helpers.expects.iter().next().map(|(_, e)| *e).expect("an expectation");
    let [p1, p2] = exp.dst.port.to_be_bytes();
    assert_eq!(text, format!("PORT 192,0,2,1,{p1},{p2}\r\n"));
    assert_eq!(exp.dst.addr, EXT);
    assert_eq!((exp.src_addr, exp.dir, exp.proto), (server(), Dir::Out2In, Proto::Tcp));
    assert_eq!(nat.helper_counters()[HelperCounter::FtpPort as usize], 1);
    // The mapping of the data endpoint exists, held by the expectation.
    let m = nat.mapping_of(Endpoint::new(client(), 40000), Proto::Tcp).unwrap();
    assert_eq!(m.outside, exp.dst);

    // Nothing else from the server gets in through that port (port-dependent filtering) ...
    let other = Tuple::new(Endpoint::new(Ipv4Addr::new(198, 51, 100, 99), 20), exp.dst, Proto::Tcp);
    assert!(nat.create_expected(&other, Dir::Out2In, SYN, T0).is_none());
    // ... but the server's data connection does, once.
    let data = Tuple::new(Endpoint::new(server(), 20), exp.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    let ds = nat.session(did).unwrap();
    assert_eq!(ds.inside(), Endpoint::new(client(), 40000));
    assert_eq!(ds.initiator(), Dir::Out2In);
    assert!(!ds.has_helper(), "data sessions are not inspected");
    assert!(nat.create_expected(&data, Dir::Out2In, SYN, T0).is_none(), "used up");
    assert_eq!(nat.expectation_count(), 0);
    assert!(matches!(nat.lookup_out2in(&data), Out2In::Session(_)));
    assert_eq!(nat.helper_of(did), Some((HelperKind::Ftp, Some(id))));
    assert_eq!(nat.helper_of(id), Some((HelperKind::Ftp, None)));
    let mut list = Vec::new();
    nat.sessions_after(0, 10, T0, &mut list);
    let d = list.iter().find(|i| i.id == did).unwrap();
    assert_eq!((d.helper, d.parent), (Some(HelperKind::Ftp), Some(id)));
    let c = list.iter().find(|i| i.id == id).unwrap();
    assert_eq!((c.helper, c.parent), (Some(HelperKind::Ftp), None));
}

#[test]
fn sequence_numbers_follow_the_length_change_both_ways() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    let port = b"PORT 100,64,0,2,156,64\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 5000, ACK, &[], port), 64, T0);
    let delta = payload(&out).len() as i64 - port.len() as i64;
    assert_ne!(delta, 0, "192,0,2,1 is shorter than 100,64,0,2");
    assert_eq!(seq_of(&out), 1000, "the rewritten segment keeps its start");
    // The next command: moved by the change.
    let next = 1000 + port.len() as u32;
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, next, 5000, ACK, &[], b"RETR f\r\n"), 64, T0);
    assert_eq!(i64::from(seq_of(&out)), i64::from(next) + delta);
    assert_eq!(payload(&out), b"RETR f\r\n");
    // The server acknowledges what it got (and SACKs a later block); the client sees
    // its own numbers. SACK option: NOP NOP kind 5 len 10 (one block).
    let got = (i64::from(next) + delta) as u32 + 8;
    let mut opts = vec![1, 1, 5, 10];
    opts.extend_from_slice(&(got + 100).to_be_bytes());
    opts.extend_from_slice(&(got + 200).to_be_bytes());
    let back = helper(&mut nat, id, Dir::Out2In, &tcp_pkt(s, c, 5000, got, ACK, &opts, b""), 0, T0);
    assert_eq!(ack_of(&back), next + 8);
    let sack = &back[44..52];
    assert_eq!(u32::from_be_bytes(sack[0..4].try_into().unwrap()), next + 8 + 100);
    assert_eq!(u32::from_be_bytes(sack[4..8].try_into().unwrap()), next + 8 + 200);
    assert!(nat.helper_counters()[HelperCounter::SeqAdjusted as usize] >= 2);
}

#[test]
fn a_port_command_split_across_segments() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    let out =
        helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 5000, ACK, &[], b"TYPE I\r\nPORT 100,64,"), 64, T0);
    assert_eq!(payload(&out), b"TYPE I\r\n", "the unfinished PORT waits");
    assert_eq!(nat.helper_counters()[HelperCounter::LineHeld as usize], 1);
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1020, 5000, ACK, &[], b"0,2,156,64\r\n"), 64, T0);
    let text = String::from_utf8(payload(&out).to_vec()).unwrap();
    assert!(text.starts_with("PORT 192,0,2,1,") && text.ends_with("\r\n"), "{text}");
    assert_eq!(seq_of(&out), 1008, "sent from where the held bytes belong");
    assert_eq!(nat.expectation_count(), 1);
}

#[test]
fn eprt_and_what_is_left_alone() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    let mut seq = 1000;
    let mut send = |nat: &mut WorkerNat, text: &[u8]| {
        let out = helper(nat, id, Dir::In2Out, &tcp_pkt(c, s, seq, 5000, ACK, &[], text), 64, T0);
        seq += text.len() as u32;
        payload(&out).to_vec()
    };
    let out = send(&mut nat, b"EPRT |1|100.64.0.2|40001|\r\n");
    assert!(out.starts_with(b"EPRT |1|192.0.2.1|"), "{}", String::from_utf8_lossy(&out));
    assert_eq!(nat.helper_counters()[HelperCounter::FtpEprt as usize], 1);
    for (text, counter) in [
        (&b"EPRT |2|::1|40002|\r\n"[..], HelperCounter::FtpEprtIpv6),
        (b"PORT 10,9,9,9,1,1\r\n", HelperCounter::ForeignAddress),
        (b"PORT 100,64,0,2,999\r\n", HelperCounter::FtpMalformed),
    ] {
        assert_eq!(send(&mut nat, text), text);
        assert_eq!(nat.helper_counters()[counter as usize], 1, "{counter:?}");
    }
    // A second PORT replaces the first expectation (one per FTP session).
    send(&mut nat, b"PORT 100,64,0,2,156,66\r\n");
    assert_eq!(nat.expectation_count(), 1);
    assert_eq!(nat.helper_counters()[HelperCounter::ExpectReplaced as usize], 1);
    // The mapping the replaced expectation held is gone.
    assert!(nat.mapping_of(Endpoint::new(client(), 40001), Proto::Tcp).is_none());
}

#[test]
fn passive_ftp_server_behind_dnat() {
    let mut nat = nat();
    let srv = Endpoint::new(client(), 21);
    let fwd = Endpoint::new(EXT, 21);
    let cl = Endpoint::new(server(), 51000);
    let t = Tuple::new(cl, fwd, Proto::Tcp);
    let id = nat.create(&t, NatAction::Dnat { to: srv, from_inside: false }, SYN, T0).unwrap();
    let sess = *nat.session(id).unwrap().session;
    assert_eq!(nat.helper_for(&sess), Some(HelperKind::Ftp), "by the server port after DNAT");
    assert!(nat.attach_helper(id, HelperKind::Ftp));
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(srv, cl, 7000, 0, SYN | ACK, &[], b""), 0, T0);
    let reply = b"227 Entering Passive Mode (100,64,0,2,117,48).\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(srv, cl, 7001, 1, ACK, &[], reply), 64, T0);
    let text = String::from_utf8(payload(&out).to_vec()).unwrap();
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    let [p1, p2] = e.dst.port.to_be_bytes();
    assert_eq!(text, format!("227 Entering Passive Mode (192,0,2,1,{p1},{p2}).\r\n"));
    assert_eq!(e.src_addr, server(), "only the client may connect");
    let data = Tuple::new(Endpoint::new(server(), 51001), e.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    assert_eq!(nat.session(did).unwrap().inside(), Endpoint::new(client(), 30000));
    // EPSV: the port only.
    let reply = b"229 Entering Extended Passive Mode (|||30001|)\r\n";
    let seq = 7001 + 48;
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(srv, cl, seq, 1, ACK, &[], reply), 64, T0);
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    let text = String::from_utf8(payload(&out).to_vec()).unwrap();
    assert_eq!(text, format!("229 Entering Extended Passive Mode (|||{}|)\r\n", e.dst.port));
    assert_eq!(nat.helper_counters()[HelperCounter::FtpEpsv as usize], 1);
}

#[test]
fn tftp_reply_from_a_new_port() {
    let mut nat = nat();
    let c = Endpoint::new(client(), 3333);
    let s = Endpoint::new(server(), 69);
    let t = Tuple::new(c, s, Proto::Udp);
    let id = nat.create(&t, NatAction::Masquerade, 0, T0).unwrap();
    let sess = *nat.session(id).unwrap().session;
    assert_eq!(nat.helper_for(&sess), Some(HelperKind::Tftp));
    assert!(nat.attach_helper(id, HelperKind::Tftp));
    let rrq = udp_pkt(c, s, b"\0\x01boot.img\0octet\0");
    assert_eq!(helper(&mut nat, id, Dir::In2Out, &rrq, 0, T0), rrq, "nothing rewritten");
    assert_eq!(nat.helper_counters()[HelperCounter::TftpRequest as usize], 1);
    let reply = Tuple::new(Endpoint::new(server(), 45678), sess.outside(), Proto::Udp);
    assert!(matches!(nat.lookup_out2in(&reply), Out2In::Filtered(_)), "the filter alone would drop it");
    let did = nat.create_expected(&reply, Dir::Out2In, 0, T0).unwrap().unwrap();
    assert_eq!(nat.session(did).unwrap().inside(), c);
    assert_eq!(nat.helper_of(did), Some((HelperKind::Tftp, Some(id))));
    // A malformed request opens nothing.
    helper(&mut nat, id, Dir::In2Out, &udp_pkt(c, s, b"\0\x01noterm"), 0, T0);
    assert_eq!(nat.helper_counters()[HelperCounter::TftpMalformed as usize], 1);
    assert_eq!(nat.expectation_count(), 0);
}

#[test]
fn irc_dcc_offer_from_anyone() {
    let mut nat = nat();
    let c = Endpoint::new(client(), 41000);
    let s = Endpoint::new(server(), 6667);
    let id = nat.create(&Tuple::new(c, s, Proto::Tcp), NatAction::Masquerade, SYN, T0).unwrap();
    let sess = *nat.session(id).unwrap().session;
    assert_eq!(nat.helper_for(&sess), Some(HelperKind::Irc));
    assert!(nat.attach_helper(id, HelperKind::Irc));
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 99, 0, SYN, &[], b""), 0, T0);
    let line = format!("PRIVMSG bob :\x01DCC SEND f.txt {} 5000 42\x01\r\n", u32::from(client()));
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 100, 1, ACK, &[], line.as_bytes()), 64, T0);
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    let want = format!("PRIVMSG bob :\x01DCC SEND f.txt {} {} 42\x01\r\n", u32::from(EXT), e.dst.port);
    assert_eq!(payload(&out), want.as_bytes());
    assert!(e.src_addr.is_unspecified(), "the peer is anyone");
    let peer = Tuple::new(Endpoint::new(Ipv4Addr::new(203, 0, 113, 50), 50000), e.dst, Proto::Tcp);
    let did = nat.create_expected(&peer, Dir::Out2In, SYN, T0).unwrap().unwrap();
    assert_eq!(nat.session(did).unwrap().inside(), Endpoint::new(client(), 5000));
}

#[test]
fn expectations_expire_and_release_their_port() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 1, ACK, &[], b"PORT 100,64,0,2,156,64\r\n"), 64, T0);
    assert_eq!(nat.mapping_count(), 2);
    assert_eq!(nat.next_deadline().map(|d| d <= T0 + EXPECT_TIMEOUT), Some(true));
    // The control connection stays busy meanwhile.
    nat.refresh(id, Dir::In2Out, ACK, RefreshMode::Force, T0 + Duration::from_secs(200));
    let mut gone = 0;
    nat.expire(T0 + EXPECT_TIMEOUT, 100, |_| gone += 1);
    assert_eq!(nat.expectation_count(), 0);
    assert_eq!(nat.mapping_count(), 1, "the data endpoint's mapping went with it");
    assert_eq!(nat.helper_counters()[HelperCounter::ExpectExpired as usize], 1);
    assert_eq!(gone, 0, "the control session lives on");
}

#[test]
fn data_sessions_keep_their_control_session_and_go_with_it() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 1, ACK, &[], b"PORT 100,64,0,2,156,64\r\n"), 64, T0);
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    let data = Tuple::new(Endpoint::new(server(), 20), e.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    // The data connection stays busy; the control connection falls silent past its
    // (transitory: never established here) timeout.
    let tcpfin = Duration::from_secs(240);
    let mut now = T0;
    for _ in 0..4 {
        now = now + Duration::from_secs(100);
        nat.refresh(did, Dir::Out2In, ACK, RefreshMode::Force, now);
        nat.expire(now, 100, |_| {});
    }
    assert!(now > T0 + tcpfin);
    assert!(nat.session(id).is_some(), "kept while its data session lives");
    assert!(nat.helper_counters()[HelperCounter::ExpiryDeferred as usize] >= 1);
    // An operator removes the control session: the data session goes too.
    nat.remove(id, now).unwrap();
    assert!(nat.session(did).is_none());
    assert_eq!(nat.count(), 0);
    assert_eq!(nat.mapping_count(), 0);
}

#[test]
fn a_control_session_ending_drops_its_expectations_and_unlinks_children() {
    let mut nat = nat();
    let (id, c, s, _) = active_ftp(&mut nat);
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 1, ACK, &[], b"PORT 100,64,0,2,156,64\r\n"), 64, T0);
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    let data = Tuple::new(Endpoint::new(server(), 20), e.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1024, 1, ACK, &[], b"PORT 100,64,0,2,156,66\r\n"), 64, T0);
    assert_eq!(nat.expectation_count(), 1);
    // Data session gone first; then the control session times out, with its expectation.
    nat.remove(did, T0).unwrap();
    nat.expire(T0 + Duration::from_secs(250), 100, |_| {});
    assert!(nat.session(id).is_none());
    assert_eq!(nat.expectation_count(), 0);
    assert_eq!(nat.mapping_count(), 0);
    assert_eq!(nat.helper_counters()[HelperCounter::ExpectRemoved as usize], 1);
}

#[test]
fn bounded_tables() {
    let mut nat = nat_with(|c| {
        c.max_helper_sessions = 1;
        c.max_expectations = 1;
    });
    let (id, c, s, _) = active_ftp(&mut nat);
    // A second FTP session finds no room: it works, without a helper.
    let c2 = Endpoint::new(Ipv4Addr::new(100, 64, 0, 3), 40000);
    let id2 = nat.create(&Tuple::new(c2, s, Proto::Tcp), NatAction::Masquerade, SYN, T0).unwrap();
    assert!(!nat.attach_helper(id2, HelperKind::Ftp));
    assert_eq!(nat.helper_counters()[HelperCounter::TableFull as usize], 1);
    assert!(!nat.session(id2).unwrap().has_helper());
    // One expectation fits; an IRC session's second offer does not (another session's
    // expectation holds the only slot).
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 1, ACK, &[], b"PORT 100,64,0,2,156,64\r\n"), 64, T0);
    assert_eq!(nat.expectation_count(), 1);
    // Its freed slot goes to the next session.
    nat.remove(id, T0).unwrap();
    assert!(nat.create(&Tuple::new(c, s, Proto::Tcp), NatAction::Masquerade, SYN, T0).is_ok());
    let id3 = nat.lookup_in2out(&Tuple::new(c, s, Proto::Tcp)).unwrap().id;
    assert!(nat.attach_helper(id3, HelperKind::Ftp));
}

#[test]
fn not_for_untranslated_sessions_or_other_protocols() {
    let mut nat = nat();
    let c = Endpoint::new(client(), 40000);
    let s = Endpoint::new(server(), 21);
    let id = nat.create(&Tuple::new(c, s, Proto::Tcp), NatAction::NoNat, SYN, T0).unwrap();
    let sess = *nat.session(id).unwrap().session;
    assert_eq!(nat.helper_for(&sess), None);
    assert!(!nat.attach_helper(id, HelperKind::Ftp));
    let u = nat.create(&Tuple::new(c, s, Proto::Udp), NatAction::Masquerade, 0, T0).unwrap();
    assert!(!nat.attach_helper(u, HelperKind::Ftp), "FTP is TCP");
    let none = nat_with(|c| c.helpers.clear());
    let sess = Session::new(SessionKind::SourceNat, Proto::Tcp, c, c, s, 0, 0);
    assert_eq!(none.helper_for(&sess), None, "helpers = [] turns them off");
}

#[test]
fn helper_ports_parse() {
    assert_eq!(HelperPort::parse("ftp"), Ok(HelperPort::new(HelperKind::Ftp, 21)));
    assert_eq!(HelperPort::parse("ftp:2121"), Ok(HelperPort::new(HelperKind::Ftp, 2121)));
    assert_eq!(HelperPort::parse("irc"), Ok(HelperPort::new(HelperKind::Irc, 6667)));
    assert!(HelperPort::parse("sip").unwrap_err().contains("unknown helper \"sip\""));
    assert!(HelperPort::parse("ftp:0").unwrap_err().contains("bad port"));
    assert!(HelperPort::parse("ftp:x").is_err());
    assert_eq!(HelperPort::new(HelperKind::Ftp, 2121).to_string(), "ftp:2121");
    assert_eq!(HelperPort::new(HelperKind::Tftp, 69).to_string(), "tftp");
}

// ----- with port blocks and deterministic NAT -----

/// The subscriber's port blocks (newest first).
fn blocks_of(nat: &WorkerNat, sub: Ipv4Addr) -> Vec<BlockInfo> {
    let mut out = Vec::with_capacity(16);
    assert_eq!(nat.blocks_matching(BlockQuery::Subscriber(sub), 0, T0, &mut out), None);
    out
}

#[test]
fn data_connections_take_their_port_from_the_subscribers_block() {
    use crate::logging::{ring, EventKind, EventMask};
    let mut nat = nat_with(|c| {
        c.port_block_size = 64;
        c.port_blocks_per_subscriber = 1;
    });
    let (sink, mut drain) = ring(1024, 0, EventMask::BLOCKS);
    nat.set_log(sink);
    let mut events = move || {
        let mut v = Vec::new();
        drain.drain(usize::MAX, |e| v.push(*e));
        v
    };
    let (id, c, s, ext) = active_ftp(&mut nat);
    let held = blocks_of(&nat, client());
    assert_eq!(held.len(), 1);
    let block = held[0].ports;
    assert_eq!((held[0].outside, held[0].mappings), (EXT, 1));
    assert!(block.contains(ext.port), "the control session's port {ext:?} in {block:?}");

    // PORT: the data endpoint's mapping takes a port of the same block, not a new one.
    let port = b"PORT 100,64,0,2,156,64\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 5000, ACK | 0x08, &[], port), 64, T0);
    let exp = nat.helpers.expects.iter().next().map(|(_, e)| *e).expect("an expectation");
    let [p1, p2] = exp.dst.port.to_be_bytes();
    assert_eq!(payload(&out), format!("PORT 192,0,2,1,{p1},{p2}\r\n").as_bytes());
    assert_eq!(exp.dst.addr, EXT);
    assert!(block.contains(exp.dst.port), "data port {} in {block:?}", exp.dst.port);
    assert_eq!(blocks_of(&nat, client())[0].mappings, 2);
    // The server's data connection lands on it; the block answers a lookup of its port.
    let data = Tuple::new(Endpoint::new(server(), 20), exp.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    assert_eq!(nat.session(did).unwrap().inside(), Endpoint::new(client(), 40000));
    assert_eq!(nat.session(did).unwrap().outside(), exp.dst);
    let mut found = Vec::with_capacity(4);
    nat.blocks_matching(BlockQuery::Outside(EXT, Some(exp.dst.port)), 0, T0, &mut found);
    assert_eq!((found.len(), found[0].subscriber, found[0].ports), (1, client(), block));
    assert_eq!(nat.block_count(), 1);
    let v = events();
    assert_eq!(v.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::BlockAllocate], "one block, no sessions");
    assert_eq!((v[0].inside().addr, v[0].outside_port, v[0].block), (client(), block.lo, 64));

    // The block's other TCP ports taken: the next PORT finds no port (the subscriber is
    // at its one block) and passes unmodified; no second block, no expectation.
    for sp in 0..62 {
        let t = Tuple::new(Endpoint::new(client(), 50000 + sp), Endpoint::new(server(), 80), Proto::Tcp);
        let o = nat.create(&t, NatAction::Masquerade, SYN, T0).unwrap();
        assert!(block.contains(nat.session(o).unwrap().outside().port));
    }
    let port = b"PORT 100,64,0,2,156,65\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1024, 5000, ACK | 0x08, &[], port), 64, T0);
    assert_eq!(payload(&out), port);
    assert_eq!(nat.helper_counters()[HelperCounter::NoPort as usize], 1);
    assert_eq!((nat.expectation_count(), nat.block_count()), (0, 1));
    // Logged as the slow path logs a subscriber out of blocks: quota exceeded (13), max
    // entries per user, the ports its blocks hold.
    let v = events();
    assert_eq!(v.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::QuotaExceeded], "{v:?}");
    assert_eq!(
        (v[0].quota, v[0].limit, v[0].inside().addr),
        (crate::logging::QuotaKind::MaxEntriesPerUser, 64, client())
    );

    // Everything ends: the block is released a hold later, logged with the same range.
    while nat.count() > 0 {
        nat.flush(T0, 64, |_| {});
    }
    let idle = blocks_of(&nat, client());
    assert_eq!(idle[0].mappings, 0);
    let release = T0 + idle[0].release_in.expect("idle");
    nat.expire(release, usize::MAX, |_| {});
    let v = events();
    assert_eq!(v.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::BlockRelease]);
    assert_eq!((v[0].inside().addr, v[0].outside_port, v[0].block), (client(), block.lo, 64));
    assert_eq!(nat.block_count(), 0);
}

#[test]
fn a_passive_ftp_server_behind_dnat_gets_a_block_on_the_forwarded_address() {
    let mut nat = nat_with(|c| {
        c.external_addrs = vec![EXT, Ipv4Addr::new(192, 0, 2, 9)];
        c.port_block_size = 64;
    });
    let srv = Endpoint::new(client(), 21);
    let fwd = Endpoint::new(EXT, 21);
    let cl = Endpoint::new(server(), 51000);
    let id =
        nat.create(&Tuple::new(cl, fwd, Proto::Tcp), NatAction::Dnat { to: srv, from_inside: false }, SYN, T0).unwrap();
    assert!(nat.attach_helper(id, HelperKind::Ftp));
    assert!(blocks_of(&nat, client()).is_empty(), "a forwarded session takes no port");
    helper(&mut nat, id, Dir::In2Out, &tcp_pkt(srv, cl, 7000, 0, SYN | ACK, &[], b""), 0, T0);
    let reply = b"229 Entering Extended Passive Mode (|||30000|)\r\n";
    let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(srv, cl, 7001, 1, ACK, &[], reply), 64, T0);
    let e = nat.helpers.expects.iter().next().map(|(_, e)| *e).unwrap();
    assert_eq!(payload(&out), format!("229 Entering Extended Passive Mode (|||{}|)\r\n", e.dst.port).as_bytes());
    // EPSV names no address: the client connects to the control connection's, so the
    // block is there, whichever address a hash of the server would have picked.
    let held = blocks_of(&nat, client());
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].outside, e.dst.addr), (EXT, EXT));
    assert!(held[0].ports.contains(e.dst.port), "{} in {:?}", e.dst.port, held[0].ports);
    let data = Tuple::new(Endpoint::new(server(), 51001), e.dst, Proto::Tcp);
    let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
    assert_eq!(nat.session(did).unwrap().inside(), Endpoint::new(client(), 30000));
}

#[test]
fn a_deterministic_subscribers_data_connection_stays_in_its_range() {
    use super::super::deterministic::{DetTable, DetTables};
    const DET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
    let tables =
        || DetTables::new(vec![DetTable::new((Ipv4Addr::new(100, 64, 0, 0), 24), (DET, 32)).unwrap()]).unwrap();
    for blocks in [0, 64] {
        let mut nat = nat_with(|c| {
            c.deterministic = tables();
            c.port_block_size = blocks;
        });
        let range = tables().map(client()).unwrap().ports;
        let (id, c, s, ext) = active_ftp(&mut nat);
        assert_eq!(ext.addr, DET);
        assert!(range.contains(ext.port));
        let port = b"PORT 100,64,0,2,156,64\r\n";
        let out = helper(&mut nat, id, Dir::In2Out, &tcp_pkt(c, s, 1000, 5000, ACK | 0x08, &[], port), 64, T0);
        let exp = nat.helpers.expects.iter().next().map(|(_, e)| *e).expect("an expectation");
        let [p1, p2] = exp.dst.port.to_be_bytes();
        assert_eq!(payload(&out), format!("PORT 192,0,2,200,{p1},{p2}\r\n").as_bytes(), "blocks {blocks}");
        // On its fixed address, in its fixed range: the table alone still answers who
        // had that port.
        assert_eq!(exp.dst.addr, DET);
        assert!(range.contains(exp.dst.port), "{} in {range:?}", exp.dst.port);
        assert_eq!(nat.deterministic().owner_host(DET, exp.dst.port), Some(client()));
        assert_eq!(nat.block_count(), 0, "deterministic subscribers take no blocks");
        let data = Tuple::new(Endpoint::new(server(), 20), exp.dst, Proto::Tcp);
        let did = nat.create_expected(&data, Dir::Out2In, SYN, T0).unwrap().unwrap();
        assert_eq!(nat.session(did).unwrap().inside(), Endpoint::new(client(), 40000));
        // Gone with the expectation's end: the port is the range's again.
        nat.remove(did, T0);
        assert_eq!(nat.mapping_count(), 1);
    }
}
