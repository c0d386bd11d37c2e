//! The server's own endpoints: `/healthz` for load balancers and compose
//! healthchecks, `/metrics` in Prometheus text format.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::ops::Ops;

pub fn router() -> Router<Ops> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    uptime_seconds: u64,
    database: &'static str,
}

/// 200 while the database answers, 503 otherwise; always a JSON body.
async fn healthz(State(state): State<Ops>) -> Response {
    let db_ok = sqlx::query("SELECT 1").execute(state.store.pool()).await.is_ok();
    let health = Health {
        status: if db_ok { "ok" } else { "degraded" },
        version: state.settings.version,
        uptime_seconds: state.settings.started.elapsed().as_secs(),
        database: if db_ok { "ok" } else { "unavailable" },
    };
    let code = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(health)).into_response()
}

async fn metrics(State(state): State<Ops>) -> Response {
    let counts = match state.store.counts().await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::error!(error = %e, "metrics: store query failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    };
    let mut body = String::new();
    let mut gauge = |name: &str, help: &str, value: i64| {
        // Writing to a String cannot fail.
        let _ = write!(body, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    };
    gauge(
        "tutti_uptime_seconds",
        "Seconds since the server started.",
        i64::try_from(state.settings.started.elapsed().as_secs()).unwrap_or(i64::MAX),
    );
    gauge("tutti_customers", "Stored customers.", counts.customers);
    gauge("tutti_conferences", "Stored conferences.", counts.conferences);
    gauge("tutti_active_calls", "Call sessions in progress.", counts.active_calls);
    gauge(
        "tutti_active_callers",
        "Callers connected to a call session in progress.",
        counts.active_callers,
    );
    let _ =
        writeln!(body, "# HELP tutti_build_info Build information.\n# TYPE tutti_build_info gauge");
    let _ = writeln!(body, "tutti_build_info{{version=\"{}\"}} 1", state.settings.version);
    state.render_auth_metrics(&mut body);
    state.live.render_metrics(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
