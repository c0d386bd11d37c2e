//! The MaestroConference-style facades described as data: each function's
//! name, whether it is a command (POST) or an information request (GET), its
//! parameters and its own error codes. A facade's dispatcher checks requests
//! against its table before a function runs, and `/openapi.json` is generated
//! from the tables, so the description cannot drift from what the server does.

use super::params::{ParamError, Params, parse_bool};
use crate::model::Role;

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    /// A UID of an object the customer owns.
    Uid,
    Integer,
    /// `true`/`false`/`1`/`0`.
    Boolean,
    /// `yyyy.MM.dd HH:mm:ss` in the server's zone, or ISO 8601 with an offset.
    DateTime,
    /// PARTICIPANT, PRESENTER, ASSISTANT or OPERATOR.
    Role,
    /// One of the listed names.
    OneOf(&'static [&'static str]),
}

/// One parameter of a function.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

/// One function of an API.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub name: &'static str,
    /// A command request (POST); otherwise an information request (GET).
    pub command: bool,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// The function's own error codes (positive), with their reasons.
    pub errors: &'static [(i64, &'static str)],
    /// What `value` holds on success.
    pub returns: &'static str,
}

pub const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Param {
    Param { name, ty, required: true, doc }
}

pub const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Param {
    Param { name, ty, required: false, doc }
}

/// The roles MaestroConference knows.
pub const ROLES: &[&str] = &["PARTICIPANT", "PRESENTER", "ASSISTANT", "OPERATOR"];

/// The function of `table` named exactly `name`.
pub fn find(table: &'static [Function], name: &str) -> Option<&'static Function> {
    table.iter().find(|f| f.name == name)
}

/// A MaestroConference role (PARTICIPANT, PRESENTER, ASSISTANT, OPERATOR, any case).
pub fn parse_role(name: &str, text: &str) -> Result<Role, ParamError> {
    let refused = || ParamError::new(name, format!("{text:?} is not a role"));
    let role: Role = text.parse().map_err(|_| refused())?;
    if !ROLES.contains(&role.as_str()) {
        return Err(refused());
    }
    Ok(role)
}

/// Checks the parameters the table declares: the required ones present, the
/// typed ones well-formed. `skip` names parameters the function checks itself.
pub fn check(
    function: &Function,
    params: &Params,
    skip: impl Fn(&Function, &str) -> bool,
) -> Result<(), ParamError> {
    for param in function.params {
        if skip(function, param.name) {
            continue;
        }
        if param.required {
            params.required(param.name)?;
        }
        let Some(value) = params.get(param.name) else { continue };
        match param.ty {
            Ty::Text | Ty::Uid | Ty::DateTime => {}
            Ty::Integer => {
                params.integer(param.name)?;
            }
            Ty::Boolean => {
                parse_bool(param.name, value)?;
            }
            Ty::Role => {
                parse_role(param.name, value)?;
            }
            Ty::OneOf(names) => {
                if !names.contains(&value.trim()) {
                    return Err(ParamError::new(
                        param.name,
                        format!("{value:?} is not one of {}", names.join(", ")),
                    ));
                }
            }
        }
    }
    Ok(())
}
