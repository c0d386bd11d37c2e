//! Read models: everything an answer shows about an object, fetched in one
//! round trip (SQLite's JSON aggregates), for the read paths that answer many
//! requests a second (getConference).

use serde::Deserialize;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError, trusted};
use crate::model::{Conference, ConferenceTag, Record, Role, RoleFlags};
use crate::time::Time;

/// What a conference's answer lists besides its own row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConferenceView {
    /// Persons registered for it, oldest first.
    pub persons: Vec<String>,
    /// Its reservations: UID, start, duration (`None`: open-ended), earliest first.
    pub reservations: Vec<(String, Time, Option<i64>)>,
    /// Its call sessions: UID and whether active, oldest first.
    pub calls: Vec<(String, bool)>,
    /// The owning customer's DID.
    pub customer_did: Option<String>,
    /// Whether the owning customer may place outbound calls.
    pub customer_place_call: bool,
    /// Sounds the customer may use: id, name and file name.
    pub sounds: Vec<(i64, String, String)>,
    pub tags: Vec<ConferenceTag>,
    /// Entry settings per role, in role order.
    pub settings: Vec<RoleFlags>,
    /// Custom key/values, by key.
    pub custom: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Reservation {
    uid: String,
    start: String,
    duration: Option<i64>,
}

#[derive(Deserialize)]
struct CallRow {
    uid: String,
    status: String,
}

#[derive(Deserialize)]
struct Setting {
    role: String,
    mike: i64,
    mute: i64,
    deaf: i64,
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

impl Store {
    /// A conference and everything its answer lists, in one query; `None`
    /// when there is no such conference.
    pub async fn conference_with_view(
        &self,
        conference_uid: &str,
    ) -> Result<Option<(Conference, ConferenceView)>> {
        let columns: Vec<String> = Conference::COLUMNS.iter().map(|c| format!("c.{c}")).collect();
        let sql = format!(
            "SELECT {}, \
             (SELECT json_group_array(uid) FROM (SELECT uid FROM persons \
                WHERE conference_uid = c.uid ORDER BY created_at, uid)) AS v_persons, \
             (SELECT json_group_array(json_object('uid', uid, 'start', start_time, 'duration', duration_minutes)) \
                FROM (SELECT uid, start_time, duration_minutes FROM reservations \
                WHERE conference_uid = c.uid ORDER BY start_time, uid)) AS v_reservations, \
             (SELECT json_group_array(json_object('uid', uid, 'status', status)) \
                FROM (SELECT uid, status FROM calls WHERE conference_uid = c.uid \
                ORDER BY actual_start, uid)) AS v_calls, \
             (SELECT did FROM customers WHERE uid = c.customer_uid) AS v_did, \
             (SELECT place_call FROM customers WHERE uid = c.customer_uid) AS v_place_call, \
             (SELECT json_group_array(json_array(id, name, file_name)) FROM (SELECT id, name, file_name FROM sounds \
                WHERE customer_uid IS NULL OR customer_uid = c.customer_uid ORDER BY id)) AS v_sounds, \
             (SELECT json_group_array(json_array(id, value)) FROM (SELECT id, value FROM conference_tags \
                WHERE conference_uid = c.uid ORDER BY id)) AS v_tags, \
             (SELECT json_group_array(json_object('role', role, 'mike', mike, 'mute', mute, 'deaf', deaf)) \
                FROM conference_role_settings WHERE conference_uid = c.uid) AS v_settings, \
             (SELECT json_group_array(json_array(key, value)) FROM (SELECT key, value FROM custom_values \
                WHERE object_type = 'conference' AND object_uid = c.uid ORDER BY key)) AS v_custom \
             FROM conferences c WHERE c.uid = ?",
            columns.join(", ")
        );
        let Some(row) =
            sqlx::query(trusted(sql)).bind(conference_uid).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let conference = <Conference as sqlx::FromRow<SqliteRow>>::from_row(&row)?;
        let text = |name: &str| -> Result<String> { Ok(row.try_get::<String, _>(name)?) };
        let raw = (
            text("v_persons")?,
            text("v_reservations")?,
            text("v_calls")?,
            row.try_get::<Option<String>, _>("v_did")?,
            text("v_sounds")?,
            text("v_tags")?,
            text("v_settings")?,
            text("v_custom")?,
        );
        let mut view = view_of(conference_uid, raw)?;
        view.customer_place_call = row.try_get::<Option<bool>, _>("v_place_call")?.unwrap_or(false);
        Ok(Some((conference, view)))
    }
}

/// The view from the query's JSON aggregates.
fn view_of(
    conference_uid: &str,
    row: (String, String, String, Option<String>, String, String, String, String),
) -> Result<ConferenceView> {
    let (persons, reservations, calls, customer_did, sounds, tags, settings, custom) = row;
    let reservations = parse::<Reservation>("reservations", &reservations)?
        .into_iter()
        .map(|r| {
            let start = r.start.parse().map_err(|e| StoreError::Invalid(format!("{e}")))?;
            Ok((r.uid, start, r.duration))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut settings: Vec<RoleFlags> = parse::<Setting>("settings", &settings)?
        .into_iter()
        .filter_map(|s| {
            let role: Role = s.role.parse().ok()?;
            Some(RoleFlags { role, mike: s.mike != 0, mute: s.mute != 0, deaf: s.deaf != 0 })
        })
        .collect();
    settings.sort_by_key(|f| Role::ALL.iter().position(|r| *r == f.role));
    Ok(ConferenceView {
        persons: parse("persons", &persons)?,
        reservations,
        calls: parse::<CallRow>("calls", &calls)?
            .into_iter()
            .map(|c| (c.uid, c.status == "ACTIVE"))
            .collect(),
        customer_did,
        customer_place_call: false,
        sounds: parse("sounds", &sounds)?,
        tags: parse::<(i64, String)>("tags", &tags)?
            .into_iter()
            .map(|(id, value)| ConferenceTag {
                id,
                conference_uid: conference_uid.to_owned(),
                value,
            })
            .collect(),
        settings,
        custom: parse("custom", &custom)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Call, Customer, ObjectType, Person, Reservation};

    #[tokio::test]
    async fn the_view_lists_what_the_single_queries_list() {
        let store = Store::open("sqlite::memory:").await.expect("store");
        let mut customer = Customer::new("Acme");
        customer.did = Some("5550100".into());
        store.create_customer(&customer).await.expect("customer");
        let conference = Conference::new(&customer, "Weekly \"quoted\"");
        store.create_conference(&conference).await.expect("conference");
        for pin in ["111111", "222222"] {
            store.insert(&Person::new(&conference, pin, Role::Presenter)).await.expect("person");
        }
        let start: crate::time::Time = "2030-01-01T10:00:00Z".parse().expect("time");
        store.insert(&Reservation::new(&conference.uid, start, 45)).await.expect("reservation");
        store.insert(&Reservation::open_ended(&conference.uid, start)).await.expect("open");
        store.start_call(&Call::new(&conference, start)).await.expect("call");
        store.add_conference_tag(&conference.uid, "vip, \"a\"").await.expect("tag");
        store
            .set_custom_value(ObjectType::Conference, &conference.uid, "k<1>", "v&2")
            .await
            .expect("custom");
        store.add_sound(Some(&customer.uid), "Chime", "chime.wav").await.expect("sound");

        let (read, view) =
            store.conference_with_view(&conference.uid).await.expect("query").expect("found");
        assert_eq!(read, conference);
        let persons: Vec<String> = store
            .persons_of(&conference.uid)
            .await
            .expect("persons")
            .into_iter()
            .map(|p| p.uid)
            .collect();
        assert_eq!(view.persons, persons);
        let reservations: Vec<(String, crate::time::Time, Option<i64>)> = store
            .reservations_of(&conference.uid)
            .await
            .expect("reservations")
            .into_iter()
            .map(|r| (r.uid, r.start_time, r.duration_minutes))
            .collect();
        assert_eq!(view.reservations, reservations);
        assert_eq!(view.calls.len(), 1);
        assert!(view.calls[0].1, "active");
        assert_eq!(view.customer_did.as_deref(), Some("5550100"));
        assert_eq!(
            view.sounds,
            vec![(view.sounds[0].0, "Chime".to_owned(), "chime.wav".to_owned())]
        );
        assert_eq!(view.tags, store.conference_tags(&conference.uid).await.expect("tags"));
        assert_eq!(
            view.settings,
            store.conference_role_settings(&conference.uid).await.expect("s")
        );
        assert_eq!(view.custom, vec![("k<1>".to_owned(), "v&2".to_owned())]);
        assert!(store.conference_with_view("nope").await.expect("query").is_none());
    }
}
