//! The kernel side of the host interfaces, set up by masqd's main thread at start and
//! undone at exit: never on a worker, never on the packet path.
//!
//! DPDK's `net_tap` creates each TAP device (and removes it when its port closes, or
//! when the process dies: the TAP is not persistent). What DPDK does not do — the
//! address, the MTU, IPv6 off, the default route, the ephemeral port range — masqd does
//! with iproute2's `ip` and `/proc/sys`, in its own network namespace. `ip` is a
//! dependency masq has anyway; every command it runs is returned to the caller to log, so
//! an operator can see (and repeat by hand) exactly what was done. A command that fails
//! is an error naming the command and what `ip` said.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use crate::config::Ipv4Cidr;

/// Why the kernel side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot run `{cmd}`: {source} (masqd needs iproute2's `ip` for host interfaces)")]
    Spawn { cmd: String, source: io::Error },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error(
        "an interface named \"{name}\" exists and is not a TAP device (kind: {kind}); remove it or choose another \
         host_interface"
    )]
    NotTap { name: String, kind: String },
    #[error("the TAP device \"{name}\" is in use by {holders}; is another masqd running with it?")]
    InUse { name: String, holders: String },
    #[error("{path}: {source}")]
    Sysctl { path: String, source: io::Error },
    #[error("`ip -j link show` printed something that is not its JSON: {0}")]
    Json(String),
}

/// Run `ip ARGS`; the command line on success, an error with `ip`'s message otherwise.
pub fn ip(args: &[&str]) -> Result<String, KernelError> {
    let cmd = format!("ip {}", args.join(" "));
    let out =
        Command::new("ip").args(args).output().map_err(|source| KernelError::Spawn { cmd: cmd.clone(), source })?;
    if out.status.success() {
        Ok(cmd)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
        Err(KernelError::Failed { cmd, stderr })
    }
}

/// What kind of link `name` is in this namespace: `None` if there is none, else its
/// `ip -d` kind (`"tun"` for TUN/TAP devices, `"veth"`, `""` for a plain device).
pub fn link_kind(name: &str) -> Result<Option<String>, KernelError> {
    let cmd = format!("ip -j -d link show dev {name}");
    let out = Command::new("ip")
        .args(["-j", "-d", "link", "show", "dev", name])
        .output()
        .map_err(|source| KernelError::Spawn { cmd: cmd.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("does not exist") || stderr.contains("Cannot find device") {
            return Ok(None);
        }
        return Err(KernelError::Failed { cmd, stderr: stderr.trim().to_string() });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| KernelError::Json(format!("{cmd}: {e}")))?;
    let link = v.get(0).ok_or_else(|| KernelError::Json(format!("{cmd}: empty list")))?;
    Ok(Some(link.pointer("/linkinfo/info_kind").and_then(|k| k.as_str()).unwrap_or("").to_string()))
}

/// Processes holding the TUN/TAP device `name` open (`pid (comm)`), from
/// `/proc/PID/fdinfo`, where the kernel names a TUN file's interface (`iff:`).
pub fn tun_holders(name: &str) -> Vec<String> {
    let mut holders = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return holders };
    let needle = format!("iff:\t{name}\n");
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fdinfo")) else { continue };
        let holds = fds.flatten().any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|t| t.contains(&needle)));
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            holders.push(format!("pid {pid} ({})", comm.trim()));
        }
    }
    holders
}

/// Make way for host interface `name` before DPDK creates it: nothing to do if no link
/// has that name; a TAP nobody holds (left by a masqd that was killed, or made
/// persistent by hand) is deleted and the command returned; a TAP another process holds,
/// or another kind of link, is an error.
pub fn remove_stale(name: &str) -> Result<Option<String>, KernelError> {
    match link_kind(name)? {
        None => Ok(None),
        Some(kind) if kind == "tun" => {
            let holders = tun_holders(name);
            if !holders.is_empty() {
                return Err(KernelError::InUse { name: name.to_string(), holders: holders.join(", ") });
            }
            ip(&["link", "delete", "dev", name]).map(Some)
        }
        Some(kind) => Err(KernelError::NotTap {
            name: name.to_string(),
            kind: if kind.is_empty() { "device".to_string() } else { kind },
        }),
    }
}

/// Write `value` to `/proc/sys/<key>` (a path such as `net/ipv4/ip_local_port_range`).
pub fn sysctl_write(key: &str, value: &str) -> Result<(), KernelError> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|source| KernelError::Sysctl { path, source })
}

/// Read `/proc/sys/<key>`, trimmed.
pub fn sysctl_read(key: &str) -> Result<String, KernelError> {
    let path = format!("/proc/sys/{key}");
    std::fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(|source| KernelError::Sysctl { path, source })
}

/// IPv6 off on `name` (masq carries IPv4 and ARP only; without this the kernel would
/// send router solicitations and MLD reports that masqd can only drop). Called as soon
/// as the TAP exists, before it is up. Without IPv6 in the kernel there is nothing to do.
pub fn disable_ipv6(name: &str) -> Result<(), KernelError> {
    let key = format!("net/ipv6/conf/{name}/disable_ipv6");
    if !Path::new("/proc/sys").join(&key).exists() {
        return Ok(());
    }
    sysctl_write(&key, "1")
}

/// What [`configure`] did: the commands run, and notes for the operator.
#[derive(Debug, Default)]
pub struct Configured {
    pub commands: Vec<String>,
    pub notes: Vec<String>,
}

/// Give the TAP `name` the port's MAC, MTU, address and prefix, bring it up, and with
/// `gateway` add the default route through it. A default route that already exists in
/// this namespace is left alone (and said so in `notes`): masqd does not replace routes
/// it did not make.
pub fn configure(
    name: &str,
    mac: [u8; 6],
    mtu: u16,
    address: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
) -> Result<Configured, KernelError> {
    let mut done = Configured::default();
    let mac = crate::packet::EthernetAddress(mac).to_string();
    let mtu = mtu.to_string();
    done.commands.push(ip(&["link", "set", "dev", name, "address", &mac, "mtu", &mtu, "up"])?);
    done.commands.push(ip(&["addr", "replace", &address.to_string(), "dev", name])?);
    if let Some(gw) = gateway {
        let gw = gw.to_string();
        match ip(&["route", "add", "default", "via", &gw, "dev", name]) {
            Ok(cmd) => done.commands.push(cmd),
            Err(KernelError::Failed { cmd, stderr }) if stderr.contains("File exists") => done.notes.push(format!(
                "`{cmd}`: a default route exists in masqd's namespace already; left as it is (host connections \
                 leave by it)"
            )),
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The kernel's ephemeral port range in masqd's namespace
/// (`net.ipv4.ip_local_port_range`), set to `[host] ports` while masqd runs.
#[derive(Debug)]
pub struct LocalPortRange {
    previous: String,
}

/// The sysctl key of the ephemeral port range.
pub const LOCAL_PORT_RANGE: &str = "net/ipv4/ip_local_port_range";

impl LocalPortRange {
    /// Set the range to `range`; the previous value is put back by [`restore`](Self::restore).
    pub fn set(range: (u16, u16)) -> Result<LocalPortRange, KernelError> {
        let previous = sysctl_read(LOCAL_PORT_RANGE)?.split_whitespace().collect::<Vec<_>>().join(" ");
        sysctl_write(LOCAL_PORT_RANGE, &format!("{} {}", range.0, range.1))?;
        Ok(LocalPortRange { previous })
    }

    /// The range as it was before.
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// Put the previous range back.
    pub fn restore(self) -> Result<(), KernelError> {
        sysctl_write(LOCAL_PORT_RANGE, &self.previous)
    }
}

/// The kernel's ephemeral range now, if readable, as `(low, high)`.
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = sysctl_read(LOCAL_PORT_RANGE).ok()?;
    let mut it = text.split_whitespace().map(|w| w.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Delete host interface `name` if it is still there (DPDK removes the TAP when its port
/// closes; this is the safety net). Returns the command if one ran.
pub fn remove(name: &str) -> Result<Option<String>, KernelError> {
    match link_kind(name)? {
        Some(kind) if kind == "tun" => ip(&["link", "delete", "dev", name]).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_ip() -> bool {
        Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    #[test]
    fn a_missing_link_is_none_and_lo_is_not_a_tap() {
        if !have_ip() {
            eprintln!("SKIP: no `ip`");
            return;
        }
        assert_eq!(link_kind("masqnosuch0").unwrap(), None);
        assert_eq!(remove_stale("masqnosuch0").unwrap(), None);
        assert_eq!(remove("masqnosuch0").unwrap(), None);
        match remove_stale("lo") {
            Err(KernelError::NotTap { name, .. }) => assert_eq!(name, "lo"),
            other => panic!("lo is not a TAP: {other:?}"),
        }
    }

    #[test]
    fn a_failed_command_says_what_ip_said() {
        if !have_ip() {
            eprintln!("SKIP: no `ip`");
            return;
        }
        let e = ip(&["link", "set", "dev", "masqnosuch0", "up"]).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("`ip link set dev masqnosuch0 up` failed: "), "{text}");
    }

    #[test]
    fn the_port_range_reads_as_two_numbers() {
        if let Some((lo, hi)) = local_port_range() {
            assert!(lo <= hi, "{lo} {hi}");
        }
    }
}
