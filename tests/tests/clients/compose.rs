//! Docker cannot run on these machines, so the compose file, its `.env` and the `Dockerfile`
//! are checked by reading them: the course's RabbitMQ service, our broker built from the repo,
//! the two consumers and the one-shot producer, and one switch choosing the broker.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text =
        std::fs::read_to_string(repo().join("docker-compose.yml")).expect("docker-compose.yml");
    serde_yaml::from_str(&text).expect("docker-compose.yml is YAML")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("service {name} missing"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn env<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    svc.get("environment")?.get(key)?.as_str()
}

#[test]
fn rabbitmq_service_is_the_course_one() {
    let doc = compose();
    let rabbit = service(&doc, "rabbitmq");
    assert_eq!(
        rabbit.get("image").and_then(Value::as_str),
        Some("rabbitmq:3-management")
    );
    assert_eq!(strings(rabbit.get("ports")), ["5672:5672", "15672:15672"]);
    assert_eq!(env(rabbit, "RABBITMQ_DEFAULT_USER"), Some("guest"));
    assert_eq!(env(rabbit, "RABBITMQ_DEFAULT_PASS"), Some("guest"));
    let test = strings(rabbit.get("healthcheck").and_then(|h| h.get("test")));
    assert_eq!(test, ["CMD", "rabbitmq-diagnostics", "-q", "ping"]);
    assert_eq!(strings(rabbit.get("profiles")), ["rabbitmq"]);
}

#[test]
fn our_broker_is_built_from_the_repo_and_interchangeable() {
    let doc = compose();
    let ours = service(&doc, "broker");
    assert_eq!(ours.get("build").and_then(Value::as_str), Some("."));
    assert_eq!(strings(ours.get("command")), ["broker"]);
    assert_eq!(
        strings(ours.get("ports")),
        ["5672:5672", "15672:15672", "15692:15692"]
    );
    assert_eq!(env(ours, "RABBITMQ_DEFAULT_USER"), Some("guest"));
    // The same health check as RabbitMQ's service: the image links rabbitmq-diagnostics to
    // brokerctl, whose `ping` asks the management API on 15672.
    let test = strings(ours.get("healthcheck").and_then(|h| h.get("test")));
    assert_eq!(test, ["CMD", "rabbitmq-diagnostics", "-q", "ping"]);
    assert_eq!(strings(ours.get("profiles")), ["ours"]);
    // Both brokers answer to the same name, so the programs never change.
    for name in ["rabbitmq", "broker"] {
        let aliases = service(&doc, name)
            .get("networks")
            .and_then(|n| n.get("default"))
            .and_then(|d| d.get("aliases"));
        assert_eq!(strings(aliases), ["amqp"], "{name}");
    }
    // `docker compose up` starts RabbitMQ unless COMPOSE_PROFILES says otherwise.
    let dotenv = std::fs::read_to_string(repo().join(".env")).expect(".env");
    assert!(
        dotenv
            .lines()
            .any(|l| l.trim() == "COMPOSE_PROFILES=rabbitmq"),
        "{dotenv}"
    );
}

#[test]
fn programs_use_the_shared_broker_name() {
    let doc = compose();
    for (name, program) in [
        ("email_consumer", "email_consumer"),
        ("loyalty_consumer", "loyalty_consumer"),
        ("producer", "producer"),
    ] {
        let svc = service(&doc, name);
        assert_eq!(
            svc.get("build").and_then(Value::as_str),
            Some("."),
            "{name}"
        );
        assert_eq!(
            env(svc, "AMQP_URL"),
            Some("amqp://guest:guest@amqp:5672/%2f"),
            "{name}"
        );
        let runs = [strings(svc.get("command")), strings(svc.get("entrypoint"))].concat();
        assert_eq!(runs, [program], "{name}");
        assert!(
            svc.get("profiles").is_none() || name == "producer",
            "{name}"
        );
    }
    let producer = service(&doc, "producer");
    assert_eq!(producer.get("restart").and_then(Value::as_str), Some("no"));
    assert!(env(service(&doc, "email_consumer"), "OUTBOX_DIR").is_some());
    assert!(env(service(&doc, "loyalty_consumer"), "LOYALTY_DB").is_some());
}

#[test]
fn dockerfile_builds_the_broker_and_the_programs() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    assert!(
        text.contains("cargo build --release --locked -p broker -p brokerctl -p clients --bins")
    );
    assert!(text.contains("ln -s brokerctl /usr/local/bin/rabbitmq-diagnostics"));
    for bin in [
        "broker",
        "brokerctl",
        "producer",
        "email_consumer",
        "loyalty_consumer",
        "consumer",
    ] {
        assert!(text.contains(&format!("target/release/{bin}")), "{bin}");
    }
    assert!(text.contains("EXPOSE 5672 15672 15692"));
    // Every binary the compose file runs is built by the Dockerfile and exists in the workspace.
    let bins =
        std::fs::read_to_string(repo().join("clients/Cargo.toml")).expect("clients manifest");
    for bin in ["producer", "email_consumer", "loyalty_consumer", "consumer"] {
        assert!(bins.contains(&format!("name = \"{bin}\"")), "{bin}");
    }
}
