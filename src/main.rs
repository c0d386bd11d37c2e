//! The `tutti` binary: parses the command line, then runs the server or one of the
//! administrative commands.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use tutti::config::{Cli, Command, ControlPasswordCommand, CustomerCommand, Settings};
use tutti::{BoxError, open_store, server};
use tutti_api::model::Customer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match environment_source(&e) {
            Some(variable) => {
                eprintln!("tutti: environment variable {variable}: {}", e.kind());
                eprint!("{}", e.render());
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
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
            Command::ControlPassword { action } => control_password(&settings, action).await,
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

/// Opens the database for a command that only reads or changes what exists:
/// a mistyped `--data-dir` must not quietly create an empty database.
async fn existing_store(settings: &Settings) -> Result<tutti_api::Store, BoxError> {
    if let Some(path) = settings.database.strip_prefix("sqlite://")
        && !path.contains(":memory:")
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        return Err(format!(
            "no database at {path} (check --data-dir or --database; `tutti serve` or `tutti migrate` creates one)"
        )
        .into());
    }
    open_store(settings).await
}

/// A customer as the customer commands print it.
#[derive(serde::Serialize)]
struct Printed<'a> {
    uid: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    did: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
}

impl<'a> Printed<'a> {
    fn of(customer: &'a Customer, api_key: Option<&'a str>) -> Self {
        Self { uid: &customer.uid, name: &customer.name, did: customer.did.as_deref(), api_key }
    }
}

/// A name for a new or renamed customer: not empty, and no other customer's.
async fn check_name(
    store: &tutti_api::Store,
    name: &str,
    except: Option<&str>,
) -> Result<String, BoxError> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a customer needs a name (--name)".into());
    }
    if let Some(other) = store.customer_named(name).await?
        && Some(other.uid.as_str()) != except
    {
        return Err(format!(
            "a customer named {:?} exists already (UID {})",
            other.name, other.uid
        )
        .into());
    }
    Ok(name.to_owned())
}

/// A DID as given: empty means none.
fn did(given: Option<String>) -> Option<String> {
    given.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty())
}

async fn customer(settings: &Settings, action: CustomerCommand) -> Result<(), BoxError> {
    let store = match &action {
        CustomerCommand::Create { .. } => open_store(settings).await?,
        _ => existing_store(settings).await?,
    };
    let not_found =
        |uid: &str| format!("no customer with UID {uid:?} (`tutti customer list` shows them)");
    let output = match action {
        CustomerCommand::Create { name, did: number } => {
            let mut customer = Customer::new(check_name(&store, &name, None).await?);
            customer.did = did(number);
            let key = store.create_customer(&customer).await?;
            serde_json::to_string(&Printed::of(&customer, Some(&key)))?
        }
        CustomerCommand::Update { uid, name, did: number, max_callers } => {
            let mut customer =
                store.find::<Customer>(&uid).await?.ok_or_else(|| not_found(&uid))?;
            if let Some(name) = name {
                customer.name = check_name(&store, &name, Some(&uid)).await?;
            }
            if number.is_some() {
                customer.did = did(number);
            }
            if let Some(limit) = max_callers {
                customer.max_callers = (limit > 0).then_some(i64::from(limit));
            }
            store.update(&customer).await?;
            serde_json::to_string(&Printed::of(&customer, None))?
        }
        CustomerCommand::List => serde_json::to_string(&store.list_customers().await?)?,
        CustomerCommand::ShowDefault => {
            let customer = store.default_customer().await.map_err(
                |_| "no default customer yet: `tutti serve` makes it on its first start",
            )?;
            serde_json::to_string(&Printed::of(&customer, None))?
        }
        CustomerCommand::RotateKey { uid } => {
            let key = match store.rotate_api_key(&uid).await {
                Ok(key) => key,
                Err(tutti_api::StoreError::NotFound(_)) => return Err(not_found(&uid).into()),
                Err(e) => return Err(e.into()),
            };
            serde_json::to_string(&serde_json::json!({ "uid": uid, "api_key": key }))?
        }
    };
    store.close().await;
    println!("{output}");
    Ok(())
}

async fn control_password(
    settings: &Settings,
    action: ControlPasswordCommand,
) -> Result<(), BoxError> {
    let store = existing_store(settings).await?;
    match action {
        ControlPasswordCommand::Reset => {
            let password = tutti_api::secret::new_password();
            store.set_control_password(&password).await?;
            store.close().await;
            println!("{} control password: {password}", tutti::server::FIRST_START);
            if settings.control_password.is_some() {
                eprintln!(
                    "tutti: note: --control-password (or TUTTI_CONTROL_PASSWORD) is set and replaces this password at the next start"
                );
            }
        }
    }
    Ok(())
}

/// The environment variable a bad option value came from, when it did not come
/// from the command line: the message should name what the user has to fix.
fn environment_source(e: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(e.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split_whitespace().next()?;
    let on_command_line = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line {
        return None;
    }
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let variable = command.get_arguments().find(|a| a.get_long() == Some(long))?.get_env()?;
    Some(variable.to_string_lossy().into_owned())
}
