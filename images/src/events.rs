//! The events a control unikernel keeps for `GET /v1/events`: what the hypervisor's `watch` tells it (VMs started, restarted, ended; their console lines), numbered, the latest kept, each as the JSON object the host's events file has.

use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt::Write;
use vmm_abi::control::{self, Message, NO_CORE, status_name};

/// The latest events, numbered from the first ever kept.
#[derive(Debug)]
pub struct EventLog {
    kept: VecDeque<String>,
    first: u64,
    limit: usize,
}

impl EventLog {
    /// An empty log that keeps the latest `limit` events (at least one).
    pub fn new(limit: usize) -> Self {
        EventLog {
            kept: VecDeque::new(),
            first: 0,
            limit: limit.max(1),
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
                let what = match event {
                    control::EVENT_STARTED => "started",
                    control::EVENT_RESTARTED => "restarted",
                    _ => "ended",
                };
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
        if self.kept.len() == self.limit {
            self.kept.pop_front();
            self.first += 1;
        }
        self.kept.push_back(out);
        true
    }

    /// The answer to a reader at event `from`: `{"first", "next",
    /// "events"}` with at most `most` events from `from` on (from the
    /// oldest kept if `from` is older; none if it is past the last).
    pub fn answer(&self, from: u64, most: usize) -> String {
        let start = from.clamp(self.first, self.next());
        let upto = self.next().min(start.saturating_add(most as u64));
        let mut body = String::new();
        let _ = write!(
            body,
            "{{\"first\":{},\"next\":{upto},\"events\":[",
            self.first
        );
        let skip = (start - self.first) as usize;
        for (i, e) in self
            .kept
            .iter()
            .skip(skip)
            .take((upto - start) as usize)
            .enumerate()
        {
            if i > 0 {
                body.push(',');
            }
            body.push_str(e);
        }
        body.push_str("]}\n");
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
        let mut log = EventLog::new(8);
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
        let v = parse(&log.answer(0, 10));
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
        let mut log = EventLog::new(3);
        for n in 0..5 {
            log.note(&line(n));
        }
        assert_eq!((log.first(), log.next()), (2, 5));
        let v = parse(&log.answer(0, 10));
        assert_eq!(v["first"], 2);
        let seqs: Vec<_> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [2, 3, 4]);
        // At most `most`, then the rest from `next`.
        let v = parse(&log.answer(2, 2));
        assert_eq!(
            (v["next"].as_u64(), v["events"].as_array().unwrap().len()),
            (Some(4), 2)
        );
        let v = parse(&log.answer(4, 2));
        assert_eq!(v["events"][0]["seq"], 4);
        // Past the last: none, and `next` stays the next.
        let v = parse(&log.answer(99, 2));
        assert_eq!(v["next"], 5);
        assert!(v["events"].as_array().unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn any_text_and_reader_give_json_that_parses(
            texts in proptest::collection::vec(".{0,40}", 0..20),
            limit in 1usize..8,
            from in 0u64..40,
            most in 0usize..10,
        ) {
            let mut log = EventLog::new(limit);
            for (i, t) in texts.iter().enumerate() {
                log.note(&Message::Console { vm: 1, name: "n\u{1}", seq: i as u64, text: t });
            }
            let v = parse(&log.answer(from, most));
            let events = v["events"].as_array().unwrap();
            prop_assert!(events.len() <= most.min(limit));
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
