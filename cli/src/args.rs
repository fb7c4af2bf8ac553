//! Command-line definition.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// cloudy-p2p: a community-cloud node (membership, service directory,
/// locality-aware peer scores) built on libp2p.
#[derive(Parser, Debug)]
#[command(name = "cloudy-p2p", version, about)]
pub(crate) struct Cli {
    /// Home directory of the node [default: $XDG_DATA_HOME/cloudy-p2p].
    #[arg(long, global = true, env = "CLOUDY_HOME")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create the home: identity key, API token and a commented config.toml.
    Init(InitArgs),
    /// Run the node in the foreground (logs on stderr, RUST_LOG respected).
    Up {
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Show this node's peer id, addresses, member count and uptime.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List members with state, RTT, availability, zone and score.
    Peers {
        /// Show only this peer.
        peer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List service providers, nearest and most reliable first.
    Services {
        /// Only this service.
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Announce a service offered by this node to the community.
    Announce {
        /// Service name.
        name: String,
        /// Metadata, repeatable: --meta key=value.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
    /// Withdraw a service this node announced.
    Withdraw {
        /// Service name.
        name: String,
    },
    /// Ask the running node to leave the community and exit.
    Stop,
    /// Store a file on the community's grid and print its capability.
    ///
    /// With a destination, the file is also linked there: `ALIAS:path`
    /// (a mutable file already there is changed in place), or the write
    /// capability of a mutable file (its new contents).
    Put {
        /// The file, or - for standard input.
        file: PathBuf,
        /// Where to link it: ALIAS:path, or a mutable file's write capability.
        dest: Option<String>,
        /// Make a new mutable file (its write capability is printed; `put
        /// FILE WRITECAP` changes it later).
        #[arg(long)]
        mutable: bool,
        #[command(flatten)]
        encoding: Encoding,
        /// Encrypt with a fresh random key instead of the convergent one.
        #[arg(long)]
        random_key: bool,
        /// Print the read and verify capabilities as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a file by its read capability, or by ALIAS:path.
    Get {
        /// The capability, or ALIAS:path.
        cap: String,
        /// Output file, or - for standard output (the default).
        #[arg(short = 'o', long = "output", default_value = "-")]
        output: PathBuf,
        /// Print a URL that a browser, VLC or mpv opens (and can seek in)
        /// instead of fetching.
        #[arg(long)]
        url: bool,
        /// With --url: the file name the URL gives the file (sets its type,
        /// so a player knows a .mp4 from a .ts).
        #[arg(long, requires = "url")]
        name: Option<String>,
    },
    /// Show which servers hold a file's shares (--verify: fetch and check every block).
    ///
    /// Exit status: 0 healthy, 3 degraded but recoverable (run `repair`),
    /// 4 not recoverable, 1 the check could not run.
    Check {
        /// A read or verify capability.
        cap: String,
        /// Fetch and verify every block of every share.
        #[arg(long)]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Regenerate missing or corrupt shares of a file on other servers.
    Repair {
        /// A read or verify capability.
        cap: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Files this node checks and repairs on its own (uploads are added unless
    /// [storage] maintain_uploads = false).
    Maintain {
        #[command(subcommand)]
        command: MaintainCommand,
    },
    /// Names for directories on the grid: `alias create NAME` makes a new
    /// directory, `alias add NAME CAP` names an existing one.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Make a directory (with its parents) at ALIAS:path; without a path,
    /// make a new unlinked directory and print its capability.
    Mkdir {
        /// ALIAS:path.
        path: Option<String>,
    },
    /// List a directory on the grid.
    Ls {
        /// ALIAS:path, or a directory capability.
        path: String,
        /// Sizes, times, kinds and capabilities.
        #[arg(short = 'l')]
        long: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy files between this machine and the grid, or within the grid.
    ///
    /// Local to grid: `cp [-r] FILE… ALIAS:dir/`; grid to local: `cp [-r]
    /// ALIAS:path… DIR`; grid to grid: `cp ALIAS:a ALIAS:b` (links, copies
    /// nothing). The last argument is the destination.
    Cp {
        /// Copy directories and everything under them.
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        encoding: Encoding,
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Move or rename an entry on the grid (into a directory if the
    /// destination is one).
    Mv {
        /// ALIAS:path to move.
        from: String,
        /// ALIAS:path to move it to.
        to: String,
    },
    /// Link what one grid path (or a capability) names at another path.
    Ln {
        /// ALIAS:path or a capability.
        from: String,
        /// ALIAS:path of the new entry.
        to: String,
    },
    /// Remove an entry from a directory on the grid.
    Rm {
        /// ALIAS:path.
        path: String,
    },
    /// Print a directory and everything under it.
    Tree {
        /// ALIAS:path, or a directory capability.
        path: String,
    },
    /// Back up a local directory to the grid: a dated snapshot under
    /// DEST/Archives/<time>, and DEST/Latest. Unchanged files are not read
    /// again and unchanged directories are not made again.
    Backup {
        /// The local directory.
        local: PathBuf,
        /// ALIAS:path to keep the snapshots under.
        dest: String,
    },
    /// Check every file and directory reachable from a directory.
    ///
    /// Exit status: 0 all healthy, 3 some degraded but recoverable (run
    /// with --repair), 4 something not recoverable.
    DeepCheck {
        /// ALIAS:path, or a directory capability.
        path: String,
        /// Fetch and verify every block of every share.
        #[arg(long)]
        verify: bool,
        /// Repair what is not healthy.
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Folders kept identical between members (Syncthing-like).
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Live channels: publish, play, list.
    Stream {
        #[command(subcommand)]
        command: StreamCommand,
    },
    /// Print an invite to this community for `cloudy-p2p join` on a new
    /// member: in a private community a one-time secret only an admin can
    /// make; in an open one, this node's addresses.
    Invite {
        /// Joins the invite allows (private communities; default 1).
        #[arg(long)]
        uses: Option<u32>,
        /// How long it stays good, e.g. `1h`, `7days` (private communities;
        /// default 7 days).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Who stores what for whom: per member, the bytes this node keeps for
    /// it and the bytes it keeps for this node, with the quotas.
    Usage {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The community as the trust boundary: make a private one, see where
    /// this node stands.
    Community {
        #[command(subcommand)]
        command: CommunityCommand,
    },
    /// Join a community from an invite in one step: creates the home if
    /// needed (taking the same options as init) or adds the invite's
    /// addresses to its bootstrap list, and connects a running node at once.
    Join {
        /// The invite (cloudy-join:1:… for an open community, cloudy-join:2:…
        /// for a private one).
        invite: String,
        #[command(flatten)]
        init: InitArgs,
    },
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man,
    /// Dial a peer's address and wait until connected.
    Connect {
        /// A multiaddr, e.g. /ip4/10.0.0.5/udp/7391/quic-v1/p2p/12D3Koo…
        addr: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ping a peer with the standard libp2p ping and print the round trip.
    Ping {
        /// Its peer id.
        peer: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Use the Kademlia DHT directly (records and providers).
    Dht {
        #[command(subcommand)]
        command: DhtCommand,
    },
    /// Capability tools.
    Cap {
        #[command(subcommand)]
        command: CapCommand,
    },
    /// Start a small local community of node processes on 127.0.0.1 and show it.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Directory for the nodes' homes [default: a new temporary directory,
        /// removed on Ctrl-C].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the temporary directory of homes after Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

/// How files stored on the grid are encoded.
#[derive(clap::Args, Debug)]
pub(crate) struct Encoding {
    /// Shares needed to read a file back [default: 3].
    #[arg(long)]
    pub k: Option<u8>,
    /// Shares made of each file [default: 5].
    #[arg(long)]
    pub n: Option<u8>,
    /// Distinct servers that must hold shares [default: 4].
    #[arg(long)]
    pub happy: Option<usize>,
}

/// `alias` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum AliasCommand {
    /// Make a new directory on the grid and name it.
    Create {
        /// The alias.
        name: String,
    },
    /// Name an existing directory capability.
    Add {
        /// The alias.
        name: String,
        /// The directory capability.
        cap: String,
    },
    /// List aliases and their capabilities.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget an alias (the directory stays on the grid).
    Remove {
        /// The alias.
        name: String,
    },
}

/// `community` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum CommunityCommand {
    /// Make this node's community private, with this node its first admin:
    /// from then on only members admitted by invite can connect. Run it
    /// while the node is stopped.
    Create {
        /// A name for the community.
        name: String,
        /// Keep the community open instead (anyone who reaches a member may
        /// join), as an explicit choice with a name.
        #[arg(long)]
        open: bool,
    },
    /// Admins: `admin add PEER` names a member admin, `admin remove PEER` removes one.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Evict a member (admins): every member disconnects it within
    /// seconds and refuses it from then on, also after restarts.
    Evict {
        /// The member's peer id.
        peer: String,
        /// Why (every member sees it).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The community id, this node's role and certificate, the admins seen.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// Name a member admin (admins only): it can then invite, renew and
    /// evict. A community should have three admins or more.
    Add {
        /// The member's peer id.
        peer: String,
    },
    /// Remove an admin (admins only; an admin may step down): it stays a
    /// member, and what it signs from now on is refused everywhere.
    Remove {
        /// The admin's peer id.
        peer: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DhtCommand {
    /// Store a text record under KEY, here and on the closest peers.
    Put {
        /// The key, e.g. /cloudy/notes.
        key: String,
        /// The value.
        value: String,
    },
    /// Print the value of the first record found under KEY.
    Get {
        /// The key.
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Announce this node as a provider of NAME (its key is the sha2-256
    /// multihash of NAME).
    Provide {
        /// What is provided.
        name: String,
    },
    /// List the providers of NAME.
    Providers {
        /// What is provided.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stream` subcommands. CHANNEL is a channel id or a channel's name.
#[derive(Subcommand, Debug)]
pub(crate) enum StreamCommand {
    /// Publish a live channel from a byte stream (MPEG-TS is cut at picture
    /// groups so players start cleanly); prints the channel id, then runs
    /// until the input ends, which ends the channel for every viewer.
    Publish {
        /// The channel's name (publishing the same name again keeps its id).
        name: String,
        /// The input: a file, or - for standard input.
        #[arg(long, default_value = "-")]
        input: PathBuf,
    },
    /// Play a channel (its bytes in order, from the newest picture group)
    /// or a video on demand (the whole file) to a file or standard output
    /// (`| mpv -`, `| ffplay -`).
    Play {
        /// A channel id or name, or a video id.
        channel: String,
        /// Output file, or - for standard output.
        #[arg(short = 'o', long = "output", default_value = "-")]
        output: PathBuf,
        /// Print the URL a player can open (`mpv URL`, `vlc URL`) instead.
        #[arg(long)]
        url: bool,
    },
    /// Channels in the community, with publisher and viewer count.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Videos on demand: publish a file, list what this node holds.
    Vod {
        #[command(subcommand)]
        command: VodCommand,
    },
    /// This node's part in a channel: neighbours, latency, continuity, bytes.
    Status {
        /// The channel id.
        channel: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `stream vod` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum VodCommand {
    /// Make a video file available to the community; prints its id
    /// (`stream play ID` or `GET /vod/ID` watch it, with seeking).
    Publish {
        /// The file (copied into the node's cache): MPEG-TS or MP4 (others
        /// are published too, for VLC and mpv).
        file: PathBuf,
        /// Its title in the community's catalogue (default: the file's name).
        #[arg(long)]
        title: Option<String>,
        /// A description for the catalogue.
        #[arg(long)]
        description: Option<String>,
    },
    /// Videos this node holds (published or cached), and bytes served.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `cap` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum CapCommand {
    /// Explain a capability (no node needed).
    Info {
        /// The capability.
        cap: String,
    },
}

/// `sync` subcommands. FOLDER is a folder id, a unique prefix of one, or its name.
#[derive(Subcommand, Debug)]
pub(crate) enum SyncCommand {
    /// Share a local directory; prints the invite others join with.
    Add {
        /// The directory.
        dir: PathBuf,
        /// A name for the folder [default: the directory's name].
        #[arg(long)]
        name: Option<String>,
        /// A peer admitted in advance, repeatable.
        #[arg(long = "member", value_name = "PEER")]
        members: Vec<String>,
    },
    /// Join a folder into a local directory; the owner admits you.
    Join {
        /// The invite (cloudy-sync:…).
        invite: String,
        /// The directory.
        dir: PathBuf,
    },
    /// Admit a peer that asked to join (owner only).
    Admit {
        /// The folder.
        folder: String,
        /// The peer id.
        peer: String,
    },
    /// List shared folders with their state.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Details of one folder, or of all: state, files and bytes left, errors.
    Status {
        /// The folder.
        folder: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop syncing a folder (its files stay).
    Remove {
        /// The folder.
        folder: String,
    },
}

/// `maintain` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum MaintainCommand {
    /// List maintained files and trees with the outcome of their last check.
    List {
        /// Print JSON (the files; with --trees, the trees).
        #[arg(long)]
        json: bool,
        /// Only the maintained trees (directories and mutable files, with
        /// everything they reach).
        #[arg(long)]
        trees: bool,
    },
    /// Maintain a file (a read or verify capability; only the verify part
    /// is kept), or a directory or mutable file with everything it reaches.
    Add {
        /// The capability.
        cap: String,
    },
    /// Stop maintaining a file.
    Remove {
        /// The capability.
        cap: String,
    },
    /// Check (and repair) every maintained file now.
    Run,
}

/// `init` options.
#[derive(clap::Args, Debug)]
pub(crate) struct InitArgs {
    /// Port for QUIC and TCP; 0 lets the OS choose at every start.
    #[arg(long, default_value_t = 7391)]
    pub port: u16,
    /// Control API address.
    #[arg(long, default_value = "127.0.0.1:7390")]
    pub api: String,
    /// Bootstrap peer multiaddress, repeatable.
    #[arg(long)]
    pub bootstrap: Vec<String>,
    /// Zone label.
    #[arg(long)]
    pub zone: Option<String>,
    /// Do not use mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Listen on 127.0.0.1 only (local tests and demos).
    #[arg(long)]
    pub loopback: bool,
}

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
