//! The events a control unikernel keeps for `GET /v1/events`: what the hypervisor's `watch` tells it (VMs started, restarted, ended; their console lines), numbered, the latest kept, each as the JSON object the host's events file has.

use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt::Write;
use vmm_abi::control::{self, Message, NO_CORE, status_name};

/// The latest events, numbered from the first ever kept, under a number
/// and a byte bound (a VM's console line may be long once escaped).
#[derive(Debug)]
pub struct EventLog {
    kept: VecDeque<String>,
    first: u64,
    limit: usize,
    /// Bytes the kept events take, and the most they may.
    bytes: usize,
    max_bytes: usize,
    /// Which log this is (a `ctl` that restarts numbers from 0 again: a
    /// reader that sees another `boot` starts over).
    boot: u64,
}

impl EventLog {
    /// An empty log `boot` that keeps the latest `limit` events (at least
    /// one) within `max_bytes` (the latest always kept).
    pub fn new(limit: usize, max_bytes: usize, boot: u64) -> Self {
        EventLog {
            kept: VecDeque::new(),
            first: 0,
            limit: limit.max(1),
            bytes: 0,
            max_bytes,
            boot,
        }
    }

    /// The number of the oldest event kept.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The number the next event will have.
    pub fn next(&self) -> u64 {
        self.first + self.kept.len() as u64
    }

    /// Keeps `msg` if it is an event (a [`Message::VmEvent`] or a
    /// [`Message::Console`] line), dropping the oldest beyond the limit;
    /// whether it was one.
    pub fn note(&mut self, msg: &Message<'_>) -> bool {
        let mut out = String::new();
        match *msg {
            Message::VmEvent {
                vm,
                name,
                event,
                status,
                core,
                restarts,
            } => {
                let what = control::event_name(event);
                let _ = write!(out, "{{\"event\":\"{what}\",\"vm\":");
                json_str(&mut out, name);
                let _ = write!(out, ",\"id\":{vm},\"status\":");
                json_str(&mut out, status_name(status));
                out.push_str(",\"core\":");
                if core == NO_CORE {
                    out.push_str("null");
                } else {
                    let _ = write!(out, "{core}");
                }
                let _ = write!(out, ",\"restarts\":{restarts}}}");
            }
            Message::Console {
                vm,
                name,
                seq,
                text,
            } => {
                out.push_str("{\"event\":\"line\",\"vm\":");
                json_str(&mut out, name);
                let _ = write!(out, ",\"id\":{vm},\"seq\":{seq},\"text\":");
                json_str(&mut out, text);
                out.push('}');
            }
            _ => return false,
        }
        out.shrink_to_fit();
        while !self.kept.is_empty()
            && (self.kept.len() == self.limit || self.bytes + out.len() > self.max_bytes)
        {
            if let Some(old) = self.kept.pop_front() {
                self.bytes -= old.len();
            }
            self.first += 1;
        }
        self.bytes += out.len();
        self.kept.push_back(out);
        true
    }

    /// The answer to a reader at event `from`: `{"boot", "first", "next",
    /// "events"}` with the events from `from` on (from the oldest kept if
    /// `from` is older; none if it is past the last), at most `most` of
    /// them and no more than `max_bytes` of them (but at least one).
    pub fn answer(&self, from: u64, most: usize, max_bytes: usize) -> String {
        let start = from.clamp(self.first, self.next());
        let skip = (start - self.first) as usize;
        let mut events = String::new();
        let mut upto = start;
        for e in self.kept.iter().skip(skip).take(most) {
            if upto > start && events.len() + e.len() > max_bytes {
                break;
            }
            if upto > start {
                events.push(',');
            }
            events.push_str(e);
            upto += 1;
        }
        let mut body = String::new();
        let _ = writeln!(
            body,
            "{{\"boot\":{},\"first\":{},\"next\":{upto},\"events\":[{events}]}}",
            self.boot, self.first
        );
        body
    }
}

/// Appends `text` as a JSON string.
pub fn json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(n: u64) -> Message<'static> {
        Message::Console {
            vm: 3,
            name: "web-3",
            seq: n,
            text: "a \"quoted\"\tline\\",
        }
    }

    fn parse(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[test]
    fn events_are_the_events_files_objects() {
        let mut log = EventLog::new(8, 1 << 16, 77);
        assert!(log.note(&Message::VmEvent {
            vm: 7,
            name: "db",
            event: control::EVENT_ENDED,
            status: control::VM_KILLED,
            core: NO_CORE,
            restarts: 2,
        }));
        assert!(log.note(&line(4)));
        assert!(!log.note(&Message::Done));
        let v = parse(&log.answer(0, 10, 1 << 16));
        assert_eq!(v["boot"], 77);
        assert_eq!(v["first"], 0);
        assert_eq!(v["next"], 2);
        let e = &v["events"];
        assert_eq!(e[0]["event"], "ended");
        assert_eq!(e[0]["vm"], "db");
        assert_eq!(e[0]["id"], 7);
        assert_eq!(e[0]["status"], status_name(control::VM_KILLED));
        assert!(e[0]["core"].is_null());
        assert_eq!(e[0]["restarts"], 2);
        assert_eq!(e[1]["event"], "line");
        assert_eq!(e[1]["seq"], 4);
        assert_eq!(e[1]["text"], "a \"quoted\"\tline\\");
    }

    #[test]
    fn the_oldest_go_and_a_reader_sees_from_where_it_can() {
        let mut log = EventLog::new(3, 1 << 16, 1);
        for n in 0..5 {
            log.note(&line(n));
        }
        assert_eq!((log.first(), log.next()), (2, 5));
        let v = parse(&log.answer(0, 10, 1 << 16));
        assert_eq!(v["first"], 2);
        let seqs: Vec<_> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [2, 3, 4]);
        // At most `most`, then the rest from `next`.
        let v = parse(&log.answer(2, 2, 1 << 16));
        assert_eq!(
            (v["next"].as_u64(), v["events"].as_array().unwrap().len()),
            (Some(4), 2)
        );
        let v = parse(&log.answer(4, 2, 1 << 16));
        assert_eq!(v["events"][0]["seq"], 4);
        // Past the last: none, and `next` stays the next.
        let v = parse(&log.answer(99, 2, 1 << 16));
        assert_eq!(v["next"], 5);
        assert!(v["events"].as_array().unwrap().is_empty());
    }

    #[test]
    fn bytes_bound_what_is_kept_and_what_one_answer_carries() {
        let one = {
            let mut l = EventLog::new(100, 1 << 16, 0);
            l.note(&line(0));
            l.bytes
        };
        // Room for three events' bytes: the oldest go first.
        let mut log = EventLog::new(100, 3 * one, 0);
        for n in 0..10 {
            log.note(&line(n));
        }
        assert_eq!((log.first(), log.next()), (7, 10));
        // An answer stops before the event that would pass its bound, but
        // carries one however long it is.
        let v = parse(&log.answer(0, 10, 2 * one));
        assert_eq!(v["next"], 9);
        let v = parse(&log.answer(0, 10, 1));
        assert_eq!(v["next"], 8);
        assert_eq!(v["events"][0]["seq"], 7);
        // One event longer than the whole bound is still kept, alone.
        let mut tiny = EventLog::new(100, 1, 0);
        tiny.note(&line(0));
        tiny.note(&line(1));
        assert_eq!((tiny.first(), tiny.next()), (1, 2));
    }

    proptest! {
        #[test]
        fn any_text_and_reader_give_json_that_parses(
            texts in proptest::collection::vec(".{0,40}", 0..20),
            limit in 1usize..8,
            from in 0u64..40,
            most in 0usize..10,
            max_bytes in 1usize..400,
            keep_bytes in 1usize..2000,
        ) {
            let mut log = EventLog::new(limit, keep_bytes, 5);
            for (i, t) in texts.iter().enumerate() {
                log.note(&Message::Console { vm: 1, name: "n\u{1}", seq: i as u64, text: t });
            }
            let v = parse(&log.answer(from, most, max_bytes));
            let events = v["events"].as_array().unwrap();
            prop_assert!(events.len() <= most.min(limit));
            prop_assert!(log.bytes <= keep_bytes || log.kept.len() == 1);
            let next = v["next"].as_u64().unwrap();
            prop_assert_eq!(next - from.clamp(log.first(), log.next()), events.len() as u64);
            for (k, e) in events.iter().enumerate() {
                let seq = e["seq"].as_u64().unwrap() as usize;
                prop_assert_eq!(e["text"].as_str().unwrap(), texts[seq].as_str());
                prop_assert_eq!(seq as u64, next - events.len() as u64 + k as u64);
            }
        }
    }
}
