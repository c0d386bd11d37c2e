//! The `tutti` binary: parses the command line, then runs the server or one of the
//! administrative commands.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use tutti::config::{Cli, Command, CustomerCommand, Settings};
use tutti::{BoxError, open_store, server};
use tutti_api::model::Customer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.options.with_file().and_then(|o| o.resolve()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tutti: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tutti: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => server::run(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::Config => {
                print!("{}", settings.to_toml());
                Ok(())
            }
            Command::Customer { action } => customer(&settings, action).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tutti: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    // The filter was validated while resolving the settings.
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(tutti::config::DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn migrate(settings: &Settings) -> Result<(), BoxError> {
    let store = open_store(settings).await?;
    store.close().await;
    tracing::info!(database = %settings.database, "migrations applied");
    Ok(())
}

async fn customer(settings: &Settings, action: CustomerCommand) -> Result<(), BoxError> {
    let store = open_store(settings).await?;
    let output = match action {
        CustomerCommand::Create { name } => {
            let customer = Customer::new(name);
            let key = store.create_customer(&customer).await?;
            serde_json::json!({ "uid": customer.uid, "name": customer.name, "api_key": key })
        }
        CustomerCommand::List => serde_json::to_value(store.list_customers().await?)?,
        CustomerCommand::RotateKey { uid } => {
            let key = store.rotate_api_key(&uid).await?;
            serde_json::json!({ "uid": uid, "api_key": key })
        }
    };
    store.close().await;
    println!("{output}");
    Ok(())
}
