//! masq's build tasks, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! - `cargo xtask dist [--out DIR]` writes what the Debian package installs beside the
//!   binaries, generated from the code that defines it: man pages `masqd(8)` and
//!   `masqctl(8)` from the clap definitions (`clap_mangen`), `masqd.toml(5)` from
//!   `docs/configuration.md` (`mandown`), and bash and zsh completions for both programs
//!   (`clap_complete`). Default `DIR`: `<target>/dist`, where the package metadata
//!   (`dataplane/Cargo.toml`, `[package.metadata.deb]`) looks for them.
//! - `cargo xtask deb` runs `dist`, then `cargo deb` on the release binaries (build them
//!   first: `cargo build --release -p dataplane -p control`), and prints the package's path.
//!
//! See `docs/operations.md` ("Install and run as a service") and `packaging/`.

mod completions;
mod man;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "masq's build tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Generate man pages and shell completions for the package.
    Dist {
        /// Output directory (default: <target>/dist).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// `dist`, then `cargo deb` from the release binaries; prints the .deb's path.
    Deb,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Dist { out } => {
            let out = out.unwrap_or_else(dist_dir);
            let files = dist(&out)?;
            for f in files {
                println!("{}", f.display());
            }
        }
        Task::Deb => {
            dist(&dist_dir())?;
            println!("{}", deb()?.display());
        }
    }
    Ok(())
}

/// The workspace root (xtask's parent directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Cargo's target directory, as the package metadata expects it.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// Write every generated file under `out` (`man/`, `completions/`); their paths.
fn dist(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |rel: &str, text: String| -> Result<()> {
        let path = out.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write("man/masqd.8", man::masqd()?)?;
    write("man/masqctl.8", man::masqctl()?)?;
    let config_doc = workspace_root().join("docs/configuration.md");
    let markdown = std::fs::read_to_string(&config_doc).with_context(|| format!("reading {}", config_doc.display()))?;
    write("man/masqd.toml.5", man::masqd_toml(&markdown))?;
    for (name, text) in completions::all()? {
        write(&format!("completions/{name}"), text)?;
    }
    Ok(written)
}

/// `cargo deb` for the dataplane crate (the package `masq`) without rebuilding.
fn deb() -> Result<PathBuf> {
    let release = target_dir().join("release");
    for bin in ["masqd", "masqctl"] {
        if !release.join(bin).is_file() {
            bail!(
                "{} missing: build the release binaries first (cargo build --release -p dataplane -p control)",
                release.join(bin).display()
            );
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["deb", "-p", "dataplane", "--no-build", "--locked"])
        .output()
        .context("running cargo deb (install it: cargo install cargo-deb --locked)")?;
    if !out.status.success() {
        bail!("cargo deb failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    // cargo deb prints the package's path as its last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path =
        stdout.lines().last().map(str::trim).filter(|l| l.ends_with(".deb")).context("no .deb path from cargo deb")?;
    Ok(PathBuf::from(path))
}
