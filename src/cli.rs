//! The command line (clap). `anyhow` lives here and in main, at the binary's edge.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::db::Db;

#[derive(Debug, Parser)]
#[command(
    name = "demiurge",
    version,
    about = "A self-hosted collaborative workspace in one executable",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Configuration file (TOML). Every key can also be set as DEMIURGE_<SECTION>__<KEY>.
    #[arg(long, short = 'c', env = "DEMIURGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: web app, edge, DNS and VPN, until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArg),
    /// Write a backup of the instance (database and keys) to FILE, while it runs: one
    /// consistent snapshot, in an archive either backend restores from.
    Backup {
        #[command(flatten)]
        config: ConfigArg,
        /// The archive to write (`.tar.gz`; mode 0600, it holds the instance's keys).
        file: PathBuf,
    },
    /// Restore a backup into this instance's database and data directory. Stop the server
    /// first. A database that holds anything is refused unless --force.
    Restore {
        #[command(flatten)]
        config: ConfigArg,
        file: PathBuf,
        /// Replace whatever the database holds.
        #[arg(long)]
        force: bool,
    },
    /// Database tasks.
    Db {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Run as a user container's agent (what the container's `docker run` line starts):
    /// enroll once, then keep the container joined to its project until SIGTERM.
    Agent(AgentArgs),
    /// Operator tasks on the instance's data.
    Admin {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The Demiurge server.
    #[arg(long, env = "DEMIURGE_URL", value_name = "URL")]
    pub url: String,
    /// The one-time enrollment token of the `docker run` line (first start only).
    #[arg(
        long,
        env = "DEMIURGE_ENROLL",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub enroll: Option<String>,
    /// Where the agent keeps its key and credential (the container's volume).
    #[arg(
        long,
        env = "DEMIURGE_STATE_DIR",
        value_name = "DIR",
        default_value = crate::containers::AGENT_STATE_DIR
    )]
    pub state_dir: PathBuf,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "DEMIURGE_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy the whole database (accounts, organizations, projects, documents, history) into
    /// another, empty one (`postgres://...`), check every table on both sides, and print the
    /// configuration line that switches to it. Stop the server first: later writes are not
    /// copied.
    Copy {
        /// The target database URL.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage WireGuard peers of the server's VPN.
    #[command(subcommand)]
    Vpn(VpnCommand),
    /// Create an account (the first account of an instance is its admin).
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print the setup code a server with no account yet asks for when its first account
    /// (the instance admin) signs up.
    SetupCode,
    /// Set a new password for an account and end all its sessions.
    ResetPassword {
        /// Username or email.
        login: String,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The password for an admin command: from stdin, or a new random one (printed once).
fn admin_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        anyhow::ensure!(!pw.is_empty(), "no password on standard input");
        Ok((pw, false))
    } else {
        use base64::Engine;
        let pw =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>());
        Ok((pw, true))
    }
}

#[derive(Debug, Subcommand)]
pub enum VpnCommand {
    /// Create a peer and print its wg-quick configuration (to stdout; keep it secret).
    AddPeer {
        /// A name for the peer: letters, digits, `.`, `_` or `-`.
        name: String,
    },
    /// List the peers.
    ListPeers,
    /// Remove a peer; it can no longer connect.
    RemovePeer { name: String },
}

fn init_logging(cfg: &Config) {
    // hickory logs every query at info; keep that for those who ask for it by name.
    let mut level = cfg.log.level.clone();
    if !level.contains("hickory") {
        level.push_str(",hickory_server=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn open_db(cfg: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&cfg.database_url()?, cfg.database.max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(c) => {
            let cfg = Config::load(c.config.as_deref())?;
            init_logging(&cfg);
            crate::server::serve(cfg).await?;
        }
        Command::Migrate(c) => {
            let cfg = Config::load(c.config.as_deref())?;
            init_logging(&cfg);
            let db = Db::connect(&cfg.database_url()?, cfg.database.max_connections).await?;
            let n = db.migrate().await?;
            println!("{n} migration(s) applied on {}", db.backend());
            db.close().await;
        }
        Command::Backup { config, file } => {
            let cfg = quiet(&config)?;
            let db = open_db(&cfg).await?;
            let result = crate::backup::backup(&db, &cfg.server.data_dir, &file).await;
            db.close().await;
            let s = result?;
            println!(
                "Backed up {} rows of {} tables and {} key files to {} ({}) in {:.1} s.",
                s.rows,
                s.tables,
                s.files,
                file.display(),
                size(s.bytes),
                s.took.as_secs_f64()
            );
        }
        Command::Restore {
            config,
            file,
            force,
        } => {
            let cfg = quiet(&config)?;
            let db = open_db(&cfg).await?;
            let result = crate::backup::restore(&db, &cfg.server.data_dir, &file, force).await;
            db.close().await;
            let (m, s) = result?;
            println!(
                "Restored {} rows of {} tables and {} key files from a {} backup of {} (Demiurge {}) into {} in {:.1} s.",
                s.rows,
                s.tables,
                s.files,
                m.source,
                m.created_at.format("%Y-%m-%d %H:%M UTC"),
                m.demiurge,
                db.backend(),
                s.took.as_secs_f64()
            );
        }
        Command::Db {
            config,
            command: DbCommand::Copy { to },
        } => {
            let cfg = quiet(&config)?;
            let mut target_cfg = cfg.clone();
            target_cfg.database.url = to.clone();
            let target_url = target_cfg.database_url()?;
            if target_url == cfg.database_url()? {
                anyhow::bail!("the target is the database this instance already uses");
            }
            let source = open_db(&cfg).await?;
            let target = Db::connect(&target_url, None).await?;
            target.migrate().await?;
            let result = crate::backup::copy(&source, &target, &cfg.server.data_dir).await;
            source.close().await;
            target.close().await;
            let s = result?;
            println!(
                "Copied {} rows of {} tables from {} to {} in {:.1} s; every table checked on both sides.",
                s.rows,
                s.tables,
                source.backend(),
                crate::config::redact_url(&to),
                s.took.as_secs_f64()
            );
            println!(
                "To run on it, set in the configuration file:\n\n[database]\nurl = \"{}\"\n\n(or DEMIURGE_DATABASE__URL in the environment), then start the server.",
                crate::config::redact_url(&to)
            );
        }
        Command::Agent(a) => {
            let filter = tracing_subscriber::EnvFilter::try_new(&a.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
            let shutdown = tokio_util::sync::CancellationToken::new();
            let on_signal = shutdown.clone();
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                on_signal.cancel();
            });
            crate::agent::run(
                crate::agent::AgentOptions {
                    url: a.url,
                    enroll: a.enroll,
                    state_dir: a.state_dir,
                },
                shutdown,
            )
            .await?;
        }
        Command::Admin { config, command } => {
            let cfg = Config::load(config.config.as_deref())?;
            init_logging(&Config {
                log: crate::config::LogConfig {
                    level: "warn".into(),
                    ..cfg.log.clone()
                },
                ..cfg.clone()
            });
            let db = open_db(&cfg).await?;
            let result = admin(&cfg, &db, command).await;
            db.close().await;
            result?;
        }
    }
    Ok(())
}

/// The configuration for a one-shot command, with logging at warn (its output is its
/// own lines).
fn quiet(config: &ConfigArg) -> anyhow::Result<Config> {
    let cfg = Config::load(config.config.as_deref())?;
    init_logging(&Config {
        log: crate::config::LogConfig {
            level: "warn".into(),
            ..cfg.log.clone()
        },
        ..cfg.clone()
    });
    Ok(cfg)
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

async fn admin(cfg: &Config, db: &Db, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Vpn(VpnCommand::AddPeer { name }) => {
            let created = crate::vpn::add_peer(db, cfg, &name).await?;
            eprintln!(
                "Created VPN peer `{}` with address {}. Its configuration follows; it holds the peer's private key.",
                created.peer.name, created.peer.address
            );
            print!("{}", created.wg_quick);
        }
        AdminCommand::CreateUser {
            username,
            email,
            display_name,
            password_stdin,
        } => {
            let (password, generated) = admin_password(password_stdin)?;
            let auth = crate::app::Accounts::new(db, cfg)?.auth;
            let user = auth
                .create_user(&crate::auth::SignUp {
                    invitation: None,
                    username,
                    email,
                    display_name,
                    password: password.clone(),
                })
                .await?;
            eprintln!(
                "Created account `{}` ({}){}.",
                user.username,
                user.id,
                if user.is_admin {
                    ", instance admin"
                } else {
                    ""
                }
            );
            if generated {
                println!("{password}");
            }
        }
        AdminCommand::SetupCode => {
            let auth = crate::app::Accounts::new(db, cfg)?.auth;
            match auth.setup_code().await? {
                Some(code) => {
                    eprintln!(
                        "This server has no account yet. Its first account (the instance admin) signs up with this setup code:"
                    );
                    println!("{code}");
                }
                None => anyhow::bail!(
                    "this server has accounts already: there is no setup code (an admin makes more with `demiurge admin create-user`)"
                ),
            }
        }
        AdminCommand::ResetPassword {
            login,
            password_stdin,
        } => {
            let (password, generated) = admin_password(password_stdin)?;
            let auth = crate::app::Accounts::new(db, cfg)?.auth;
            let user = auth.reset_password(&login, &password).await?;
            eprintln!(
                "New password set for `{}`; all its sessions have ended.",
                user.username
            );
            if generated {
                println!("{password}");
            }
        }
        AdminCommand::Vpn(VpnCommand::ListPeers) => {
            for p in db.vpn_peers().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.name,
                    p.address,
                    p.public_key,
                    p.created_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        AdminCommand::Vpn(VpnCommand::RemovePeer { name }) => {
            db.delete_vpn_peer(&name)
                .await
                .with_context(|| format!("no VPN peer named `{name}`"))?;
            eprintln!("Removed VPN peer `{name}`.");
        }
    }
    Ok(())
}
