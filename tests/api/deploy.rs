//! `docker-compose.yml` and `Dockerfile`: no Docker engine runs here, so the
//! files are parsed and checked against the real configuration parser.

use serde_yaml_ng::Value;
use warden::config::{Config, KNOWN_ENV};

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_warden_on_postgres_and_redis_with_healthchecks() {
    let doc = compose();
    let services = &doc["services"];
    for name in ["postgres", "redis", "warden"] {
        assert!(services[name].is_mapping(), "service {name}");
        assert!(
            !strings(&services[name]["healthcheck"]["test"]).is_empty(),
            "{name} has a healthcheck"
        );
    }
    let warden = &services["warden"];
    assert_eq!(warden["build"].as_str(), Some("."));
    assert_eq!(
        strings(&warden["healthcheck"]["test"]),
        ["CMD", "warden", "healthcheck"]
    );
    for dependency in ["postgres", "redis"] {
        assert_eq!(
            warden["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    for volume in ["postgres-data", "redis-data"] {
        assert!(
            doc["volumes"].get(volume).is_some(),
            "named volume {volume}"
        );
    }
    let pg_volume = strings(&services["postgres"]["volumes"]);
    assert!(pg_volume.iter().any(|v| v.starts_with("postgres-data:")));
}

#[test]
fn compose_environment_is_a_valid_warden_config() {
    let doc = compose();
    let env = doc["services"]["warden"]["environment"]
        .as_mapping()
        .unwrap();
    let pairs: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{v:?}")),
            )
        })
        .collect();
    for (name, _) in &pairs {
        assert!(
            KNOWN_ENV.contains(&name.as_str()),
            "{name} is not a Warden setting"
        );
    }
    let config = Config::from_vars(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    assert!(!config.is_sqlite());
    assert_eq!(config.listen.port(), 8080);
    assert!(config.redis_url.is_some());
    // The hosts in the URLs are the compose services.
    assert!(config.database_display().contains("@postgres:5432/"));
    let postgres_env = &doc["services"]["postgres"]["environment"];
    assert!(config.database_display().starts_with(&format!(
        "postgres://{}@",
        postgres_env["POSTGRES_USER"].as_str().unwrap()
    )));
    assert!(pairs
        .iter()
        .any(|(k, v)| k == "WARDEN_REDIS_URL" && v.contains("redis:6379")));
}

#[test]
fn a_bad_compose_value_would_be_caught() {
    assert!(Config::from_vars([("WARDEN_ACCESS_TOKEN_TTL", "soon")]).is_err());
    assert!(Config::from_vars([("WARDEN_NOPE", "1")]).is_err());
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_slim_with_a_healthcheck() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(stages, 2, "multi-stage");
    assert!(text.contains("cargo build --release --locked --bin warden"));
    assert!(text.contains("HEALTHCHECK") && text.contains("\"warden\", \"healthcheck\""));
    assert!(text.contains("USER warden"), "does not run as root");
}
