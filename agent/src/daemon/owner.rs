//! The daemon's state has one owner: a thread of its own that runs one
//! typed command at a time. The other tasks (control and query
//! connections, the event reader, the 2 s tick, metrics) send it a
//! [`Command`] and await its reply. The blocking work a command does (an
//! fsync per audit record or batch of events, `nft` snapshots, tree walks,
//! notify spawns) runs on that thread, never on the runtime's workers; a
//! command that panics is caught there and logged, its caller gets no
//! reply (a control connection an error, a supervised task its end), and
//! the state goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::oneshot;

use super::{events::EventRing, *};
use crate::local_addresses::LocalPrefix;

/// What the owner is asked to do, each with where its reply goes.
pub(super) enum Command {
    /// A request on the control socket, from process `peer_pid`.
    Control { request: Request, peer_pid: Option<u32>, reply: oneshot::Sender<Response> },
    /// A subject's question on the query socket, about itself; `caller` is
    /// the accepted connection's socket cookie.
    Query { query: query::Query, caller: u64, reply: oneshot::Sender<Response> },
    /// The event ring, lent to be drained: answered with it and how many
    /// items were recorded, once they are written and fsynced.
    Drain { ring: EventRing, reply: oneshot::Sender<(EventRing, usize)> },
    /// The metrics text.
    Metrics { reply: oneshot::Sender<String> },
    /// The 2 s housekeeping.
    Tick { reply: oneshot::Sender<()> },
    /// The local routing table as it is now, for LOCAL_ADDRESSES.
    LocalAddresses { prefixes: Result<BTreeSet<LocalPrefix>, String>, reply: oneshot::Sender<()> },
    /// Mount points that came or went (see `mounts`).
    Mounts { change: super::mounts::MountChange, reply: oneshot::Sender<()> },
    /// The daemon's last words (`failed`: the task whose end stops it);
    /// the owner ends after answering.
    Stop { failed: Option<(&'static str, String)>, reply: oneshot::Sender<()> },
}

/// Where commands for the state's owner go.
#[derive(Clone)]
pub(super) struct Owner(std::sync::mpsc::Sender<Command>);

impl Owner {
    /// Moves `state` to its owner thread.
    pub(super) fn start(state: State) -> std::io::Result<Owner> {
        let (sender, commands) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("warrant-state".into())
            .spawn(move || own(state, commands, execute, |command| matches!(command, Command::Stop { .. })))?;
        Ok(Owner(sender))
    }

    /// Sends the command `make` builds around its reply channel and awaits
    /// the reply: `None` if the command panicked or the owner has ended
    /// (the daemon is stopping).
    pub(super) async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.0.send(make(reply)).ok()?;
        answer.await.ok()
    }
}

/// The owner's loop: `run` each command on `state` in turn, until one that
/// `is_last` or until every sender is gone.
fn own<S, C>(mut state: S, commands: std::sync::mpsc::Receiver<C>, run: fn(&mut S, C), is_last: fn(&C) -> bool) {
    for command in commands {
        let last = is_last(&command);
        // The reply sender goes down with a panicking command: its caller
        // learns there is no answer. The state may be half-updated, as a
        // poisoned lock's would be; enforcement is in the kernel meanwhile,
        // and a supervised caller ends the daemon for a restart.
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&mut state, command))) {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error!("a command to the daemon's state panicked: {what}");
        }
        if last {
            break;
        }
    }
}

fn execute(state: &mut State, command: Command) {
    // Every command's own records are synced one by one.
    state.sync_audit();
    match command {
        Command::Control { request, peer_pid, reply } => {
            let _ = reply.send(sockets::handle(request, peer_pid, state));
        }
        // A subject that went away does not cost the owner its answer.
        Command::Query { reply, .. } if reply.is_closed() => {}
        Command::Query { query, caller, reply } => {
            let _ = reply.send(Response::from(state.answer(query, caller)));
        }
        Command::Drain { mut ring, reply } => {
            let drained = state.drain(&mut ring);
            let _ = reply.send((ring, drained));
        }
        Command::Metrics { reply } => {
            let _ = reply.send(metrics::render(&state.metrics()));
        }
        Command::Tick { reply } => {
            state.tick();
            let _ = reply.send(());
        }
        Command::LocalAddresses { prefixes, reply } => {
            state.set_local_addresses(&prefixes);
            let _ = reply.send(());
        }
        Command::Mounts { change, reply } => {
            state.protect_mounts(&change);
            let _ = reply.send(());
        }
        Command::Stop { failed, reply } => {
            state.stop(failed);
            let _ = reply.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Push = (u32, oneshot::Sender<usize>);

    /// Pushes the value and answers how many there are; 0 panics, 99 is the last.
    fn push(values: &mut Vec<u32>, (value, reply): Push) {
        assert_ne!(value, 0, "zero");
        values.push(value);
        let _ = reply.send(values.len());
    }

    #[test]
    fn a_panicking_command_gets_no_answer_and_the_owner_goes_on() {
        let (sender, commands) = std::sync::mpsc::channel();
        let owner = std::thread::spawn(move || own(Vec::new(), commands, push, |(value, _)| *value == 99));
        let ask = |value| {
            let (reply, answer) = oneshot::channel();
            sender.send((value, reply)).ok()?;
            answer.blocking_recv().ok()
        };
        assert_eq!(ask(7), Some(1));
        assert_eq!(ask(0), None);
        assert_eq!(ask(8), Some(2), "the owner stopped after a panic");
        assert_eq!(ask(99), Some(3));
        owner.join().unwrap();
        // The owner has ended: a command gets no answer.
        assert_eq!(ask(5), None);
    }
}
