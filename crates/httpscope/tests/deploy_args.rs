//! The command lines in deploy/ (the DaemonSet's container args, the systemd unit's
//! ExecStart) are accepted by `httpscope record`, as the clap parser reads them. YAML is
//! read through python3's yaml module (installed with kubernetes-validate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use clap::Parser;
use httpscope::cli::{Cli, Command as Subcommand, RecordArgs};

fn deploy(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// Runs a python3 snippet that prints a JSON list of strings about `file`.
fn python_list(script: &str, file: &str) -> Vec<String> {
    let out = Command::new("python3")
        .args(["-c", script, file])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn parse_record(args: &[String]) -> RecordArgs {
    let cli = Cli::try_parse_from(std::iter::once("httpscope".to_owned()).chain(args.to_vec()))
        .unwrap_or_else(|err| panic!("{args:?} does not parse:\n{err}"));
    match cli.command {
        Some(Subcommand::Record(record)) => record,
        other => panic!("{args:?} is not `record`: {other:?}"),
    }
}

#[test]
fn the_daemonsets_args_parse_as_record() {
    let args = python_list(
        "import json, sys, yaml\n\
         ds = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d['kind'] == 'DaemonSet')\n\
         print(json.dumps(ds['spec']['template']['spec']['containers'][0]['args']))",
        &deploy("kubernetes/daemonset.yaml"),
    );
    let record = parse_record(&args);
    assert!(record.all_ports, "{args:?}");
    assert!(
        record.output.integrations.metrics_addr.is_some(),
        "{args:?}"
    );
}

#[test]
fn the_units_execstart_parses_as_record() {
    let args = python_list(
        "import json, shlex, sys\n\
         text = open(sys.argv[1]).read().replace('\\\\\\n', ' ')\n\
         line = next(l for l in text.splitlines() if l.startswith('ExecStart='))\n\
         print(json.dumps(shlex.split(line[len('ExecStart='):])[1:]))",
        &deploy("httpscope.service"),
    );
    let record = parse_record(&args);
    assert!(record.all_ports, "{args:?}");
}
