//! The network-function images' packet logic (parsers, builders, firewall, NAT, sink, generator, stackless UDP echo and the shared run loop), host-tested and free of `unsafe`.
#![forbid(unsafe_code)]

pub mod args;
pub mod arp;
pub mod checksum;
pub mod control;
pub mod firewall;
pub mod function;
pub mod guest;
pub mod nat;
pub mod packet;
pub mod pause;
pub mod pktgen;
pub mod sink;
pub mod udp_echo;
