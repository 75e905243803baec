//! Sequence-number adjustment after a helper changed the length of a TCP stream, as
//! Linux's `nf_conntrack_seqadj` does.
//!
//! When a helper rewrites `PORT 100,64,0,2,156,64` into `PORT 203,0,113,1,4,1`, the
//! bytes after it sit at other sequence numbers than the sender used. From then on
//! every segment of the sender has its sequence number moved by the accumulated
//! difference, and every acknowledgement (and SACK block) of the receiver is moved
//! back, so each side keeps seeing its own numbering.
//!
//! One [`SeqAdj`] describes one direction's changes, in the *sender's* sequence space:
//!
//! ```text
//!   sender's seq:   ... ───────── correction_pos ─────────────── ...
//!   offset:             offset_before  │ (segment starting here)   offset_after
//!                                      └─ the segment whose rewrite changed the length
//! ```
//!
//! A segment that starts at or before `correction_pos` (a retransmission of the
//! rewritten segment or of something older) takes `offset_before`; a later one
//! `offset_after`. Only the most recent change point is remembered: a retransmission
//! that reaches back past two rewrites gets the older offset wrong, exactly as in
//! Linux. Rewrites are rare (one per FTP data connection), so this does not happen in
//! practice. Arithmetic is modulo 2^32 throughout (RFC 9293 §3.4's comparisons).

use crate::packet::checksum::Delta;

/// TCP option kinds (RFC 9293 §3.2, RFC 2018).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_SACK: u8 = 5;

/// Whether `a` comes after `b` in sequence space (modulo 2^32).
#[inline]
pub const fn seq_after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// Whether `a` comes before `b` in sequence space.
#[inline]
pub const fn seq_before(a: u32, b: u32) -> bool {
    seq_after(b, a)
}

/// The length changes of one direction of a TCP connection (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdj {
    /// Sequence number (sender's space) of the segment holding the last change.
    pub correction_pos: u32,
    /// Offset of segments starting at or before `correction_pos`.
    pub offset_before: i32,
    /// Offset of segments starting after it.
    pub offset_after: i32,
}

impl SeqAdj {
    /// Whether any change was recorded (then every segment needs adjusting).
    pub const fn is_active(&self) -> bool {
        self.offset_before != 0 || self.offset_after != 0
    }

    /// Record that the segment starting at `seq` came out `delta` bytes longer (or
    /// shorter). A retransmission of the segment already recorded changes nothing
    /// (Linux: `nf_ct_seqadj_set`).
    pub fn record(&mut self, seq: u32, delta: i32) {
        if delta == 0 {
            return;
        }
        if self.offset_before == self.offset_after || seq_before(self.correction_pos, seq) {
            self.correction_pos = seq;
            self.offset_before = self.offset_after;
            self.offset_after = self.offset_after.wrapping_add(delta);
        }
    }

    /// The receiver's view of the sender's sequence number `seq`.
    #[inline]
    pub const fn map_seq(&self, seq: u32) -> u32 {
        let off = if seq_after(seq, self.correction_pos) { self.offset_after } else { self.offset_before };
        seq.wrapping_add(off as u32)
    }

    /// The sender's view of an acknowledgement number (or SACK edge) `ack` the
    /// receiver sent.
    #[inline]
    pub const fn unmap_ack(&self, ack: u32) -> u32 {
        let off = if seq_after(ack.wrapping_sub(self.offset_before as u32), self.correction_pos) {
            self.offset_after
        } else {
            self.offset_before
        };
        ack.wrapping_sub(off as u32)
    }
}

#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Overwrite `b[at..at + 4]` with `v`, adding the change to `delta` word by word of the
/// checksum's 16-bit alignment (the field may start at an odd offset inside options).
fn put32(b: &mut [u8], at: usize, v: u32, delta: &mut Delta) {
    let lo = at & !1;
    let hi = (at + 4 + 1) & !1;
    let word = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b.get(i + 1).copied().unwrap_or(0)]);
    let mut old = [0u16; 3];
    for (k, i) in (lo..hi).step_by(2).enumerate() {
        old[k] = word(b, i);
    }
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    for (k, i) in (lo..hi).step_by(2).enumerate() {
        *delta = delta.replace16(old[k], word(b, i));
    }
}

/// Adjust one TCP segment, in place: its sequence number by `seq` (changes its sender
/// made, `seq_of` giving the sequence number to map — normally the header's), its
/// acknowledgement number and SACK blocks by `ack` (changes the other side made). The
/// TCP checksum is updated incrementally. `tcp` is the whole segment, header checked
/// by the caller (at least 20 bytes and its data offset within the buffer).
///
/// Returns the checksum change (already applied), for callers that track it.
pub fn adjust_segment(tcp: &mut [u8], seq: Option<(&SeqAdj, u32)>, ack: Option<&SeqAdj>) -> Delta {
    let mut d = Delta::new();
    if let Some((adj, seq_of)) = seq {
        let old = get32(tcp, 4);
        let new = adj.map_seq(seq_of);
        if new != old {
            put32(tcp, 4, new, &mut d);
        }
    }
    if let Some(adj) = ack.filter(|a| a.is_active()) {
        const ACK_FLAG: u8 = 0x10;
        if tcp[13] & ACK_FLAG != 0 {
            let old = get32(tcp, 8);
            put32(tcp, 8, adj.unmap_ack(old), &mut d);
        }
        let hlen = usize::from(tcp[12] >> 4) * 4;
        adjust_sack(tcp, hlen.min(tcp.len()), adj, &mut d);
    }
    if !d.is_zero() {
        let c = u16::from_be_bytes([tcp[16], tcp[17]]);
        tcp[16..18].copy_from_slice(&d.apply(c).to_be_bytes());
    }
    d
}

/// Move every SACK block edge of the options in `tcp[20..hlen]` back by `adj`
/// (Linux: `nf_ct_sack_adjust`). Malformed options end the walk; nothing else moves.
fn adjust_sack(tcp: &mut [u8], hlen: usize, adj: &SeqAdj, d: &mut Delta) {
    let mut i = 20;
    while i < hlen {
        match tcp[i] {
            OPT_END => return,
            OPT_NOP => i += 1,
            kind => {
                let Some(&len) = tcp.get(i + 1).filter(|_| i + 1 < hlen) else { return };
                let len = usize::from(len);
                if len < 2 || i + len > hlen {
                    return;
                }
                if kind == OPT_SACK && (len - 2) % 8 == 0 {
                    let mut at = i + 2;
                    while at + 8 <= i + len {
                        for edge in [at, at + 4] {
                            let v = get32(tcp, edge);
                            put32(tcp, edge, adj.unmap_ack(v), d);
                        }
                        at += 8;
                    }
                }
                i += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tcp::TcpPacket;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn comparisons_wrap() {
        assert!(seq_after(1, 0));
        assert!(seq_after(5, u32::MAX - 3));
        assert!(seq_before(u32::MAX - 3, 5));
        assert!(!seq_after(7, 7));
        assert!(!seq_before(7, 7));
    }

    #[test]
    fn one_rewrite_then_retransmission() {
        let mut a = SeqAdj::default();
        assert!(!a.is_active());
        // The segment at 1000 grew by 3.
        a.record(1000, 3);
        assert_eq!(a.map_seq(900), 900);
        assert_eq!(a.map_seq(1000), 1000, "the rewritten segment itself keeps its start");
        assert_eq!(a.map_seq(1030), 1033);
        // Its retransmission records nothing new.
        a.record(1000, 3);
        assert_eq!((a.offset_before, a.offset_after), (0, 3));
        // Acks of the receiver: up to the rewritten segment's start unchanged, after it -3.
        assert_eq!(a.unmap_ack(1000), 1000);
        assert_eq!(a.unmap_ack(1033), 1030);
        // A second, shrinking rewrite later.
        a.record(2000, -5);
        assert_eq!((a.correction_pos, a.offset_before, a.offset_after), (2000, 3, -2));
        assert_eq!(a.map_seq(2000), 2003);
        assert_eq!(a.map_seq(2100), 2098);
        assert_eq!(a.unmap_ack(2098), 2100);
        assert_eq!(a.unmap_ack(2003), 2000);
        // An older segment than the last change point does not move it back.
        a.record(1500, 7);
        assert_eq!((a.correction_pos, a.offset_before, a.offset_after), (2000, 3, -2));
    }

    /// The model: every byte's position in the receiver's stream is its position in the
    /// sender's plus the sum of the changes of every rewritten segment that starts
    /// before it. Segments are generated in order from a random start (wrapping), some
    /// rewritten; mapping a segment's start must agree with the model for every segment
    /// from the second-to-last change on (what a retransmission can reach, see the
    /// module docs), and acknowledgements of mapped positions must map back.
    #[derive(Clone, Debug)]
    struct Seg {
        len: u32,
        delta: i32,
    }

    fn segs() -> impl Strategy<Value = Vec<Seg>> {
        prop::collection::vec(
            (1u32..1500, prop_oneof![4 => Just(0i32), 1 => -40i32..40]).prop_map(|(len, delta)| Seg {
                // A rewrite never removes more than the segment held.
                delta: delta.max(-(len as i32) + 1),
                len,
            }),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_the_model(isn in any::<u32>(), near_wrap in any::<bool>(), segs in segs()) {
            let isn = if near_wrap { u32::MAX - 3000 + (isn % 2000) } else { isn };
            let mut adj = SeqAdj::default();
            // (sender seq, model offset before this segment, delta)
            let mut done: Vec<(u32, i32, i32)> = Vec::new();
            let mut seq = isn;
            let mut off = 0i32;
            for s in &segs {
                // A new segment: mapped with the offset of everything before it.
                prop_assert_eq!(adj.map_seq(seq), seq.wrapping_add(off as u32));
                adj.record(seq, s.delta);
                // Its retransmission right away maps the same and records nothing.
                let before = adj;
                adj.record(seq, s.delta);
                prop_assert_eq!(adj, before);
                prop_assert_eq!(adj.map_seq(seq), seq.wrapping_add(off as u32));
                done.push((seq, off, s.delta));
                off += s.delta;
                seq = seq.wrapping_add(s.len);
                // The receiver acknowledges everything so far: the sender sees `seq`.
                prop_assert_eq!(adj.unmap_ack(seq.wrapping_add(off as u32)), seq);
            }
            // Retransmissions and acks reaching back to the last rewritten segment.
            let last_change = done.iter().rposition(|d| d.2 != 0).unwrap_or(0);
            for &(s, o, _) in &done[last_change..] {
                prop_assert_eq!(adj.map_seq(s), s.wrapping_add(o as u32));
                prop_assert_eq!(adj.unmap_ack(s.wrapping_add(o as u32)), s);
            }
        }
    }

    /// A segment with a SACK option at an odd offset (after one NOP), built with a
    /// full checksum; adjusting it must give what rewriting the fields and recomputing
    /// gives.
    #[test]
    fn segment_fields_sack_and_checksum() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        // 20 header + NOP + SACK(2 blocks: 18 bytes) + NOP = 40 bytes of header.
        let mut seg = vec![0u8; 40 + 5];
        seg[0..2].copy_from_slice(&1234u16.to_be_bytes());
        seg[2..4].copy_from_slice(&21u16.to_be_bytes());
        seg[4..8].copy_from_slice(&5000u32.to_be_bytes());
        seg[8..12].copy_from_slice(&9000u32.to_be_bytes());
        seg[12] = 10 << 4;
        seg[13] = 0x10;
        seg[20] = OPT_NOP;
        seg[21] = OPT_SACK;
        seg[22] = 18;
        for (k, v) in [9100u32, 9200, 9300, 9400].iter().enumerate() {
            seg[23 + 4 * k..27 + 4 * k].copy_from_slice(&v.to_be_bytes());
        }
        seg[39] = OPT_NOP;
        seg[40..].copy_from_slice(b"hello");
        TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(src, dst);

        let mut theirs = SeqAdj::default();
        theirs.record(9050, 10);
        let mut mine = SeqAdj::default();
        mine.record(4000, -2);
        let mut got = seg.clone();
        adjust_segment(&mut got, Some((&mine, 5000)), Some(&theirs));

        let mut want = seg.clone();
        want[4..8].copy_from_slice(&4998u32.to_be_bytes());
        // 9000 lies before the other side's change point: unchanged.
        for (k, v) in [9090u32, 9190, 9290, 9390].iter().enumerate() {
            want[23 + 4 * k..27 + 4 * k].copy_from_slice(&v.to_be_bytes());
        }
        TcpPacket::new_unchecked(&mut want[..]).fill_checksum(src, dst);
        assert_eq!(got, want);
        assert!(TcpPacket::new_unchecked(&got[..]).verify_checksum(src, dst));
    }

    #[test]
    fn malformed_options_stop_the_walk_without_panicking() {
        let mut adj = SeqAdj::default();
        adj.record(0, 4);
        for opts in [&[OPT_SACK][..], &[OPT_SACK, 0], &[OPT_SACK, 1], &[OPT_SACK, 200, 0, 0], &[2, 4, 5, 0xb4]] {
            let mut seg = vec![0u8; 20 + opts.len().next_multiple_of(4)];
            seg[12] = ((seg.len() / 4) as u8) << 4;
            seg[13] = 0x10;
            seg[20..20 + opts.len()].copy_from_slice(opts);
            let before = seg[20..].to_vec();
            adjust_segment(&mut seg, None, Some(&adj));
            assert_eq!(&seg[20..], &before[..], "{opts:?}");
        }
    }

    proptest! {
        /// Arbitrary headers and options: never panics, and the checksum stays right.
        #[test]
        fn arbitrary_segments(mut seg in prop::collection::vec(any::<u8>(), 20..80), pos in any::<u32>(), d in -50i32..50) {
            let hl = (seg[12] >> 4).clamp(5, (seg.len() / 4) as u8);
            seg[12] = hl << 4 | (seg[12] & 0x0f);
            let (src, dst) = (Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8));
            TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(src, dst);
            let mut adj = SeqAdj::default();
            adj.record(pos, d);
            let s = get32(&seg, 4);
            adjust_segment(&mut seg, Some((&adj, s)), Some(&adj));
            prop_assert!(TcpPacket::new_unchecked(&seg[..]).verify_checksum(src, dst));
        }
    }
}
