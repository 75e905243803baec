//! The text stream of one helper session: lines, rewrites, split lines, retransmissions.
//!
//! FTP and IRC speak in lines. A helper only ever looks at the direction *from the
//! inside host* (that is where inside addresses come from) and only at segments that
//! continue the stream in order, from the start of a line, like Linux's FTP helper
//! (`seq_aft_nl`). Per segment, [`Stream::segment`] does:
//!
//! ```text
//!  SYN ─────────────────────────────▶ learn the first sequence number
//!  seq == next (in order) ──────────▶ [prepend held bytes] ─▶ skip to a line start if
//!                                     mid-line ─▶ each complete line: rewrite? ─▶ an
//!                                     unfinished last line that may need rewriting:
//!                                     hold it back (trim the segment) if it fits
//!  seq == start of the last rewrite ▶ replay the same rewrite (a retransmission)
//!  older data (retransmission) ─────▶ pass, cut short before held bytes or the last
//!                                     rewrite (the client resends the rest)
//!  a gap (we missed a segment) ─────▶ pass; parse again after the next newline
//! ```
//!
//! **Split lines.** A line cut across segments cannot be rewritten in place: its first
//! part has gone. So when a segment ends with an unfinished line that may turn out to
//! need rewriting ([`Lines::candidate`]: `PORT 100,64,` ...), those bytes are cut from
//! the segment and kept (at most [`LINE_MAX`]); the next segment gets them back in
//! front, so the receiver sees the whole line, rewritten, in one piece, at the same
//! sequence numbers. Nothing else changes: the bytes only travel a little later. The
//! held bytes stay unacknowledged, so the sender retransmits them after its
//! retransmission timeout (200 ms at least on Linux): the first
//! [`HOLD_RETRANSMISSIONS`] such retransmissions are emptied (still held: a sender that
//! writes the rest a little later gets it rewritten); after that the helper gives up on
//! the line, lets the bytes through and counts it ([`StreamEvent::SplitGivenUp`]) — a
//! sender waiting for the acknowledgement before it sends the rest (Nagle's
//! algorithm) would otherwise wait forever. A line too long to hold is passed as is
//! ([`StreamEvent::LineTooLong`]).
//!
//! **Retransmissions** are never parsed again except the segment that carried the
//! last rewrite, which gets the same rewrite (same external endpoint, no new
//! expectation) so the stream stays consistent; the sequence adjustment records a
//! change only once ([`SeqAdj::record`]).

use super::super::key::Endpoint;
use super::seqadj::{seq_after, seq_before, SeqAdj};
use core::ops::Range;

/// The longest unfinished line a session can hold back, bytes.
pub const LINE_MAX: usize = 256;

/// The longest replacement text a [`Lines`] implementation writes.
pub const REPL_MAX: usize = 24;

/// Retransmissions of held bytes (alone) that are emptied before the helper gives up
/// on the line (the sender's backoff makes it 200 + 400 ms at least on Linux).
pub const HOLD_RETRANSMISSIONS: u8 = 2;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// A rewrite of one line: replace `span` (relative to the line) by `out[..len]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub span: Range<usize>,
    pub len: usize,
    /// The external endpoint the text now names (kept for replays).
    pub ext: Endpoint,
}

/// A line protocol: which unfinished lines to hold, how to rewrite a complete one.
pub trait Lines {
    /// Whether an unfinished line may turn out to need rewriting.
    fn candidate(&self, partial: &[u8]) -> bool;
    /// Look at a complete line (terminator included). `replay`: the endpoint of the
    /// rewrite this line had before (a retransmission) — use it, set nothing up.
    fn line(&mut self, line: &[u8], replay: Option<Endpoint>, out: &mut [u8; REPL_MAX]) -> Option<Rewrite>;
}

/// Something worth a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// An unfinished line was held back for the next segment.
    Held,
    /// The sender retransmitted held bytes alone: passed, the line not rewritten.
    SplitGivenUp,
    /// An unfinished candidate line longer than [`LINE_MAX`]: passed as is.
    LineTooLong,
    /// A rewrite (or putting held bytes back) would not fit the packet: passed as is.
    NoRoom,
    /// A segment after a gap: lines are parsed again from the next newline on.
    Resync,
    /// A retransmission of the last rewritten segment was rewritten the same way.
    Replayed,
    /// A second line to rewrite in one segment (passed as is; one per segment).
    SecondRewrite,
}

/// What to do with the segment after [`Stream::segment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The payload's new length.
    pub len: usize,
    /// The sender's sequence number of the first byte now in the segment: map it
    /// through [`Stream::adj`] for the header.
    pub seq_of: u32,
    /// The payload bytes changed (the TCP checksum must be computed again).
    pub changed: bool,
    /// The segment was cut short: its FIN, if any, must go (it is resent later).
    pub clear_fin: bool,
}

const F_SYNCED: u8 = 1;
const F_MID_LINE: u8 = 2;
const F_LAST: u8 = 4;

/// Per-session stream state (one direction: from the inside host).
#[derive(Clone)]
pub struct Stream {
    /// The sender's length changes.
    pub adj: SeqAdj,
    /// Sender sequence number just after the last byte consumed in order (held bytes
    /// included).
    next: u32,
    /// Bytes held back: `buf[..held]`, sender sequence numbers `[next - held, next)`.
    held: u16,
    /// Retransmissions of the held bytes emptied so far.
    held_resent: u8,
    flags: u8,
    /// Start of the last rewritten segment and the endpoint it got.
    last_seq: u32,
    last_ext: Endpoint,
    buf: [u8; LINE_MAX],
}

impl Stream {
    pub const EMPTY: Stream = Stream {
        adj: SeqAdj { correction_pos: 0, offset_before: 0, offset_after: 0 },
        next: 0,
        held: 0,
        held_resent: 0,
        flags: 0,
        last_seq: 0,
        last_ext: Endpoint::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
        buf: [0; LINE_MAX],
    };

    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    fn set(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// Bytes held back now.
    pub fn held(&self) -> usize {
        usize::from(self.held)
    }

    /// Process one segment of the stream, in place. `room` holds the payload in its
    /// first `len` bytes and may grow into the rest; `seq` and `tcp_flags` are the
    /// header's.
    pub fn segment(
        &mut self,
        seq: u32,
        tcp_flags: u8,
        room: &mut [u8],
        len: usize,
        lines: &mut impl Lines,
        ev: &mut impl FnMut(StreamEvent),
    ) -> Outcome {
        let pass = Outcome { len, seq_of: seq, changed: false, clear_fin: false };
        if tcp_flags & SYN != 0 {
            // The first byte of data comes after the SYN.
            *self = Stream { adj: self.adj, next: seq.wrapping_add(1), flags: F_SYNCED, ..Stream::EMPTY };
            return pass;
        }
        if tcp_flags & RST != 0 {
            return pass;
        }
        let fin = tcp_flags & FIN != 0;
        let ends_line = len > 0 && room[len - 1] == b'\n';
        if !self.has(F_SYNCED) {
            // Picked up mid-stream: wait for a segment that ends a line.
            if ends_line {
                self.next = seq.wrapping_add(len as u32);
                self.flags = F_SYNCED;
            }
            return pass;
        }
        let held = u32::from(self.held);
        let start = self.next.wrapping_sub(held);
        if held > 0 {
            if seq == self.next && (len > 0 || fin) {
                return self.continuation(seq, room, len, fin, lines, ev);
            }
            if seq == start && len > 0 {
                if len > self.held() || room[..len].contains(&b'\n') {
                    // The sender resent from the line's start with more: it carries the
                    // held bytes itself.
                    self.held = 0;
                    self.next = start;
                    return self.in_order(seq, room, len, fin, lines, ev);
                }
                // The held bytes alone: the sender's retransmission timer. Empty it a few
                // times (the rest of the line may be on its way), then give up: the
                // sender may be waiting for the acknowledgement before it sends more.
                if self.held_resent < HOLD_RETRANSMISSIONS {
                    self.held_resent += 1;
                    return Outcome { len: 0, seq_of: seq, changed: true, clear_fin: fin };
                }
                ev(StreamEvent::SplitGivenUp);
                self.held = 0;
                self.set(F_MID_LINE, true);
                return pass;
            }
            if len == 0 && !fin {
                // A bare ACK: present it at the hold point, not past the held bytes.
                let seq_of = if seq == self.next { start } else { seq };
                return Outcome { seq_of, ..pass };
            }
            if seq_before(seq, start) {
                return self.older(seq, room, len, fin, Some(start), lines, ev);
            }
            // Past what we expected: a segment went missing.
            self.held = 0;
            return self.gap(seq, len, ends_line, ev, pass);
        }
        if seq == self.next {
            return self.in_order(seq, room, len, fin, lines, ev);
        }
        if seq_before(seq, self.next) {
            return self.older(seq, room, len, fin, None, lines, ev);
        }
        self.gap(seq, len, ends_line, ev, pass)
    }

    fn gap(
        &mut self,
        seq: u32,
        len: usize,
        ends_line: bool,
        ev: &mut impl FnMut(StreamEvent),
        pass: Outcome,
    ) -> Outcome {
        if len > 0 {
            ev(StreamEvent::Resync);
            self.next = seq.wrapping_add(len as u32);
            self.set(F_MID_LINE, !ends_line);
        }
        pass
    }

    /// The next segment after held bytes: put them back in front.
    fn continuation(
        &mut self,
        seq: u32,
        room: &mut [u8],
        len: usize,
        fin: bool,
        lines: &mut impl Lines,
        ev: &mut impl FnMut(StreamEvent),
    ) -> Outcome {
        let h = self.held();
        let start = seq.wrapping_sub(h as u32);
        if len + h > room.len() {
            // No room: let the segment go alone; the held bytes stay unacknowledged,
            // so the sender resends them (and they pass as a retransmission).
            ev(StreamEvent::NoRoom);
            self.held = 0;
            self.next = seq.wrapping_add(len as u32);
            self.set(F_MID_LINE, !(len > 0 && room[len - 1] == b'\n'));
            return Outcome { len, seq_of: seq, changed: false, clear_fin: false };
        }
        room.copy_within(..len, h);
        room[..h].copy_from_slice(&self.buf[..h]);
        self.held = 0;
        self.next = start;
        let mut out = self.in_order(start, room, len + h, fin, lines, ev);
        out.changed = true;
        out
    }

    /// A segment that continues the stream exactly (`seq == self.next`).
    fn in_order(
        &mut self,
        seq: u32,
        room: &mut [u8],
        len: usize,
        fin: bool,
        lines: &mut impl Lines,
        ev: &mut impl FnMut(StreamEvent),
    ) -> Outcome {
        self.next = seq.wrapping_add(len as u32);
        let mut out = Outcome { len, seq_of: seq, changed: false, clear_fin: false };
        let mut pos = 0;
        if self.has(F_MID_LINE) {
            match room[..len].iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    pos = nl + 1;
                    self.set(F_MID_LINE, false);
                }
                None => return out,
            }
        }
        let mut rewritten: Option<Endpoint> = None;
        let mut delta: i64 = 0;
        while pos < out.len {
            let Some(nl) = room[pos..out.len].iter().position(|b| *b == b'\n').map(|i| pos + i) else {
                // An unfinished last line.
                let partial = pos..out.len;
                if lines.candidate(&room[partial.clone()]) && !fin {
                    if partial.len() <= LINE_MAX {
                        self.buf[..partial.len()].copy_from_slice(&room[partial.clone()]);
                        self.held = partial.len() as u16;
                        self.held_resent = 0;
                        out.len = pos;
                        out.changed = true;
                        ev(StreamEvent::Held);
                        break;
                    }
                    ev(StreamEvent::LineTooLong);
                }
                self.set(F_MID_LINE, true);
                break;
            };
            let mut end = nl + 1;
            let mut repl = [0u8; REPL_MAX];
            if let Some(rw) = lines.line(&room[pos..end], None, &mut repl) {
                if rewritten.is_some() {
                    ev(StreamEvent::SecondRewrite);
                } else {
                    match splice(room, &mut out.len, pos, &rw, &repl) {
                        Some(d) => {
                            delta += d;
                            end = (end as i64 + d) as usize;
                            rewritten = Some(rw.ext);
                            out.changed = true;
                        }
                        None => ev(StreamEvent::NoRoom),
                    }
                }
            }
            pos = end;
        }
        if let Some(ext) = rewritten {
            self.adj.record(seq, delta as i32);
            self.last_seq = seq;
            self.last_ext = ext;
            self.set(F_LAST, true);
        }
        out
    }

    /// A retransmission of data already seen (starts before `self.next`). `hold_at`:
    /// where held bytes start (the segment must stop there).
    #[allow(clippy::too_many_arguments)]
    fn older(
        &mut self,
        seq: u32,
        room: &mut [u8],
        len: usize,
        fin: bool,
        hold_at: Option<u32>,
        lines: &mut impl Lines,
        ev: &mut impl FnMut(StreamEvent),
    ) -> Outcome {
        let mut out = Outcome { len, seq_of: seq, changed: false, clear_fin: false };
        if hold_at.is_none() && self.has(F_LAST) && seq == self.last_seq {
            // The segment that carried the last rewrite: the same rewrite again.
            let mut pos = 0;
            while let Some(nl) = room[pos..out.len].iter().position(|b| *b == b'\n').map(|i| pos + i) {
                let end = nl + 1;
                let mut repl = [0u8; REPL_MAX];
                if let Some(rw) = lines.line(&room[pos..end], Some(self.last_ext), &mut repl) {
                    if let Some(d) = splice(room, &mut out.len, pos, &rw, &repl) {
                        self.adj.record(seq, d as i32);
                        out.changed = true;
                        ev(StreamEvent::Replayed);
                    }
                    break;
                }
                pos = end;
            }
            return out;
        }
        // Stop before the held bytes or the last rewritten segment: what lies beyond is
        // resent by the sender and handled then.
        let limit = hold_at.or((self.has(F_LAST) && seq_before(seq, self.last_seq)).then_some(self.last_seq));
        if let Some(limit) = limit {
            let end = seq.wrapping_add(len as u32);
            if seq_after(end, limit) {
                out.len = limit.wrapping_sub(seq) as usize;
                out.clear_fin = fin;
            }
        }
        // More than was seen before: the stream moves on, from an unknown line position.
        let end = seq.wrapping_add(len as u32);
        if hold_at.is_none() && seq_after(end, self.next) {
            self.next = end;
            self.set(F_MID_LINE, !(len > 0 && room[len - 1] == b'\n'));
        }
        out
    }
}

/// Replace `rw.span` of the line starting at `pos` by `repl[..rw.len]`, shifting the
/// rest of the payload (`*len` bytes) within `room`. Returns the length change, or
/// `None` (nothing changed) when the result would not fit `room`.
fn splice(room: &mut [u8], len: &mut usize, pos: usize, rw: &Rewrite, repl: &[u8; REPL_MAX]) -> Option<i64> {
    let (a, b) = (pos + rw.span.start, pos + rw.span.end);
    let new_len = *len - (b - a) + rw.len;
    if new_len > room.len() || rw.len > REPL_MAX || b > *len {
        return None;
    }
    room.copy_within(b..*len, a + rw.len);
    room[a..a + rw.len].copy_from_slice(&repl[..rw.len]);
    let d = new_len as i64 - *len as i64;
    *len = new_len;
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Rewrites `X<digits>` to `X<ext port>`: a toy protocol with a length change.
    struct Toy {
        next_port: u16,
        set_up: Vec<u16>,
    }

    impl Lines for Toy {
        fn candidate(&self, partial: &[u8]) -> bool {
            partial.first() == Some(&b'X')
        }
        fn line(&mut self, line: &[u8], replay: Option<Endpoint>, out: &mut [u8; REPL_MAX]) -> Option<Rewrite> {
            if line.first() != Some(&b'X') {
                return None;
            }
            let n = line[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let ext = match replay {
                Some(e) => e,
                None => {
                    self.set_up.push(self.next_port);
                    self.next_port += 1;
                    Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), self.next_port - 1)
                }
            };
            let s = ext.port.to_string();
            out[..s.len()].copy_from_slice(s.as_bytes());
            Some(Rewrite { span: 1..1 + n, len: s.len(), ext })
        }
    }

    fn toy() -> Toy {
        Toy { next_port: 65000, set_up: Vec::new() }
    }

    struct Harness {
        st: Stream,
        toy: Toy,
        events: Vec<StreamEvent>,
        /// What the receiver got, by its sequence numbers (offset from the ISN + 1).
        received: Vec<Option<u8>>,
        isn: u32,
    }

    impl Harness {
        fn new(isn: u32) -> Harness {
            let mut h = Harness { st: Stream::EMPTY, toy: toy(), events: Vec::new(), received: Vec::new(), isn };
            h.send(isn, SYN, b"", 64);
            h
        }

        /// Send a segment at sender offset `off` (from the first data byte); returns
        /// what left, and records it as received.
        fn seg(&mut self, off: u32, data: &[u8]) -> (Outcome, Vec<u8>) {
            let seq = self.isn.wrapping_add(1).wrapping_add(off);
            self.send(seq, 0x18, data, 64)
        }

        fn send(&mut self, seq: u32, flags: u8, data: &[u8], extra: usize) -> (Outcome, Vec<u8>) {
            let mut room = data.to_vec();
            room.resize(data.len() + extra, 0);
            let events = &mut self.events;
            let o = self.st.segment(seq, flags, &mut room, data.len(), &mut self.toy, &mut |e| events.push(e));
            let bytes = room[..o.len].to_vec();
            if flags & SYN == 0 {
                let at = self.st.adj.map_seq(o.seq_of).wrapping_sub(self.isn.wrapping_add(1)) as usize;
                if self.received.len() < at + bytes.len() {
                    self.received.resize(at + bytes.len(), None);
                }
                for (i, b) in bytes.iter().enumerate() {
                    // TCP keeps the first copy of a byte.
                    self.received[at + i].get_or_insert(*b);
                }
            }
            (o, bytes)
        }

        fn text(&self) -> String {
            self.received.iter().map(|b| b.map_or('?', char::from)).collect()
        }
    }

    #[test]
    fn rewrites_in_order_lines_and_shifts_what_follows() {
        for isn in [7, u32::MAX - 2] {
            let mut h = Harness::new(isn);
            h.seg(0, b"HELLO\r\nX12\r\nMORE\r\n");
            assert_eq!(h.text(), "HELLO\r\nX65000\r\nMORE\r\n");
            // The next segment lands after the longer text.
            h.seg(18, b"NEXT\r\n");
            assert_eq!(h.text(), "HELLO\r\nX65000\r\nMORE\r\nNEXT\r\n");
            assert_eq!(h.st.adj.unmap_ack(h.st.adj.map_seq(isn.wrapping_add(25))), isn.wrapping_add(25));
        }
    }

    #[test]
    fn a_split_line_is_held_and_put_back() {
        let mut h = Harness::new(1000);
        let (o, out) = h.seg(0, b"HELLO\r\nX1");
        assert_eq!(out, b"HELLO\r\n");
        assert!(o.changed);
        assert_eq!(h.st.held(), 2);
        // A bare ACK in between is presented at the hold point.
        let (o, _) = h.seg(9, b"");
        assert_eq!(h.st.adj.map_seq(o.seq_of), 1000 + 1 + 7);
        let (o, out) = h.seg(9, b"2\r\nAFTER\r\n");
        assert_eq!(out, b"X65000\r\nAFTER\r\n");
        assert_eq!(o.seq_of, 1000 + 1 + 7);
        assert_eq!(h.text(), "HELLO\r\nX65000\r\nAFTER\r\n");
        assert_eq!(h.events, [StreamEvent::Held]);
        h.seg(19, b"END\r\n");
        assert_eq!(h.text(), "HELLO\r\nX65000\r\nAFTER\r\nEND\r\n");
        assert_eq!(h.toy.set_up, [65000]);
    }

    #[test]
    fn a_line_split_in_three_and_not_a_candidate() {
        let mut h = Harness::new(0);
        h.seg(0, b"X");
        h.seg(1, b"12");
        h.seg(3, b"3\r\nRETR long");
        h.seg(15, b" name\r\n");
        assert_eq!(h.text(), "X65000\r\nRETR long name\r\n");
        assert_eq!(h.events, [StreamEvent::Held, StreamEvent::Held]);
    }

    #[test]
    fn retransmissions_of_the_held_bytes_alone_are_emptied_then_given_up() {
        let mut h = Harness::new(0);
        h.seg(0, b"A\r\nX1");
        assert_eq!(h.st.held(), 2);
        // The sender resends its unacknowledged bytes: emptied, still held ...
        for _ in 0..HOLD_RETRANSMISSIONS {
            let (o, out) = h.seg(3, b"X1");
            assert_eq!((out.as_slice(), o.changed), (&b""[..], true));
            assert_eq!(h.st.held(), 2);
        }
        // ... until the helper gives up (Nagle holds the rest back).
        let (_, out) = h.seg(3, b"X1");
        assert_eq!(out, b"X1");
        h.seg(5, b"2\r\nB\r\n");
        assert_eq!(h.text(), "A\r\nX12\r\nB\r\n");
        assert_eq!(h.events, [StreamEvent::Held, StreamEvent::SplitGivenUp]);
        // Still in sync afterwards.
        h.seg(11, b"X9\r\n");
        assert_eq!(h.text(), "A\r\nX12\r\nB\r\nX65000\r\n");
    }

    #[test]
    fn the_rest_after_an_emptied_retransmission() {
        let mut h = Harness::new(0);
        h.seg(0, b"A\r\nX1");
        h.seg(3, b"X1");
        let (_, out) = h.seg(5, b"2\r\n");
        assert_eq!(out, b"X65000\r\n");
        assert_eq!(h.text(), "A\r\nX65000\r\n");
    }

    #[test]
    fn a_resend_from_the_line_start_with_more_is_parsed() {
        let mut h = Harness::new(0);
        h.seg(0, b"A\r\nX1");
        let (_, out) = h.seg(3, b"X12\r\n");
        assert_eq!(out, b"X65000\r\n");
        assert_eq!(h.text(), "A\r\nX65000\r\n");
    }

    #[test]
    fn retransmissions() {
        let mut h = Harness::new(500);
        h.seg(0, b"A\r\n");
        h.seg(3, b"X12\r\n");
        h.seg(8, b"B\r\n");
        // The rewritten segment again: same text, no new setup, no new offset.
        let (o, out) = h.seg(3, b"X12\r\n");
        assert_eq!(out, b"X65000\r\n");
        assert!(o.changed);
        assert_eq!(h.toy.set_up, [65000]);
        assert_eq!(h.st.adj.offset_after, 3);
        // An older one reaching into the rewritten segment stops before it.
        let (o, out) = h.seg(0, b"A\r\nX12\r\n");
        assert_eq!(out, b"A\r\n");
        assert!(!o.changed);
        // A later one passes with the new offset.
        let (o, _) = h.seg(8, b"B\r\n");
        assert_eq!(h.st.adj.map_seq(o.seq_of), 500 + 1 + 8 + 3);
        assert_eq!(h.text(), "A\r\nX65000\r\nB\r\n");
        assert!(h.events.contains(&StreamEvent::Replayed));
    }

    #[test]
    fn gaps_resync_at_the_next_newline() {
        let mut h = Harness::new(0);
        h.seg(0, b"A\r\n");
        // Offset 3..6 never arrives here; this one starts mid-way through a line.
        h.seg(6, b"12\r\nX3\r\n");
        assert_eq!(h.events, [StreamEvent::Resync]);
        assert_eq!(&h.text()[6..], "12\r\nX3\r\n", "nothing parsed after a gap");
        h.seg(14, b"X4\r\n");
        assert!(h.text().ends_with("X65000\r\n"));
    }

    #[test]
    fn no_room_passes_unmodified() {
        let mut h = Harness::new(0);
        let (o, out) = h.send(1, 0x18, b"X1\r\n", 0);
        assert_eq!(out, b"X1\r\n");
        assert!(!o.changed);
        assert_eq!(h.events, [StreamEvent::NoRoom]);
    }

    #[test]
    fn a_long_unfinished_candidate_passes() {
        let mut h = Harness::new(0);
        let mut long = vec![b'X'];
        long.resize(LINE_MAX + 10, b'1');
        let (_, out) = h.seg(0, &long);
        assert_eq!(out, long);
        h.seg(long.len() as u32, b"\r\nX1\r\n");
        assert!(h.text().ends_with("\r\nX65000\r\n"));
        assert_eq!(h.events, [StreamEvent::LineTooLong]);
    }

    #[test]
    fn fin_with_held_bytes_carries_them() {
        let mut h = Harness::new(0);
        h.seg(0, b"X1");
        let (o, out) = h.send(1 + 2, 0x11, b"", 64);
        assert_eq!(out, b"X1");
        assert_eq!(o.seq_of, 1);
        assert_eq!(h.text(), "X1");
    }

    #[test]
    fn picked_up_mid_stream() {
        let mut h = Harness { st: Stream::EMPTY, toy: toy(), events: Vec::new(), received: Vec::new(), isn: 0 };
        h.seg(0, b"ATE\r\n");
        h.seg(5, b"X1\r\n");
        assert_eq!(h.text(), "ATE\r\nX65000\r\n");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// A script of lines cut into random segments, delivered in order: the
        /// receiver gets every line, each `X` line rewritten — wherever the cuts fall
        /// (a segment never carries two `X` lines: one rewrite per segment).
        #[test]
        fn any_segmentation(
            lines in proptest::collection::vec((proptest::bool::ANY, 0u32..100000, "[A-Z ]{0,12}"), 1..12),
            cuts in proptest::collection::vec(1usize..9, 1..60),
            isn in proptest::prelude::any::<u32>(),
        ) {
            let mut script = Vec::new();
            let mut x_starts = Vec::new();
            let mut want = String::new();
            let mut port = 65000u16;
            for (x, n, text) in &lines {
                if *x {
                    x_starts.push(script.len());
                    script.extend_from_slice(format!("X{n}\r\n").as_bytes());
                    want.push_str(&format!("X{port}\r\n"));
                    port += 1;
                } else {
                    let l = format!("Y{text}\r\n");
                    script.extend_from_slice(l.as_bytes());
                    want.push_str(&l);
                }
            }
            let mut h = Harness::new(isn);
            let mut off = 0usize;
            let mut k = 0;
            while off < script.len() {
                let next_x = x_starts.iter().copied().find(|s| *s > off).unwrap_or(script.len());
                let n = cuts[k % cuts.len()].min(next_x - off);
                k += 1;
                h.seg(off as u32, &script[off..off + n]);
                off += n;
            }
            // Anything still held goes with the FIN.
            h.send(isn.wrapping_add(1).wrapping_add(off as u32), 0x11, b"", 64);
            proptest::prop_assert_eq!(h.text(), want);
        }
    }
}
