//! Telling a service manager how masqd is doing: systemd's `Type=notify` protocol
//! (`sd_notify(3)`), a datagram to `$NOTIFY_SOCKET`.
//!
//! masqd says `READY=1` once its ports are up, its workers poll and its control socket
//! (and metrics listener, if any) serve — so `systemctl start masqd` returns when masqctl
//! can talk to it — and `STOPPING=1` when a signal tells it to stop. Without
//! `$NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) these do nothing. A failed
//! notification is reported on stderr and otherwise ignored: it never stops masqd.

use sd_notify::NotifyState;

/// Startup is complete; `status` is a one-line summary (`systemctl status` shows it).
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// masqd has been told to stop and is shutting down.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        eprintln!("masqd: cannot notify the service manager ($NOTIFY_SOCKET): {e}");
    }
}
