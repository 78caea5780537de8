//! The operations on one account: disable and enable, the last admin,
//! sessions, lockout, factors, password reset, deletion.

use entity::{audit_event, mail_outbox, passkey, session, totp_factor, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use super::{my_id, run};
use crate::cli::warden;
use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with, PASSWORD};
use crate::mfa::enrolled;
use crate::passkeys::{
    add_passkey, add_passkey_with,
    authenticator::{Soft, ORIGIN},
    finish_login, start_login,
};

const DISABLE: &str =
    "mutation($id: ID!, $r: String) { disableUser(id: $id, reason: $r) { id disabled disabledAt disabledReason } }";
const ENABLE: &str = "mutation($id: ID!) { enableUser(id: $id) { id disabled } }";
const SET_ROLE: &str =
    "mutation($id: ID!, $role: Role!) { setUserRole(id: $id, role: $role) { id role } }";

#[tokio::test]
async fn a_disabled_account_loses_its_sessions_and_cannot_sign_in_until_enabled() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    let registered = app.register(&who).await;
    let (token, refresh) = (
        s(&registered, "accessToken").to_owned(),
        s(&registered, "refreshToken").to_owned(),
    );
    let id = s(&registered["user"], "id").to_owned();

    let body = run(&app, &admin, DISABLE, json!({ "id": id, "r": " fraud " })).await;
    let disabled = &body["data"]["disableUser"];
    assert_eq!(disabled["disabled"], true, "{body}");
    assert_eq!(disabled["disabledReason"], "fraud");
    assert!(disabled["disabledAt"].is_string());

    // The live access token is refused on its very next request.
    let me = app.me(Some(&token)).await;
    assert_eq!(code(&me), Some("UNAUTHENTICATED"), "{me}");
    assert_eq!(reason(&me), Some("REVOKED"));
    assert_eq!(
        code(&app.refresh(&refresh).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    // A right password learns why; a wrong one learns nothing.
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("ACCOUNT_DISABLED")
    );
    assert_eq!(
        code(&app.login(&who, "wrong password 123").await),
        Some("INVALID_CREDENTIALS")
    );

    let body = run(&app, &admin, ENABLE, json!({ "id": id })).await;
    assert_eq!(body["data"]["enableUser"]["disabled"], false, "{body}");
    let login = app.login(&who, PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");

    let log = run(
        &app,
        &admin,
        "query($u: ID) { auditLog(filter: { userId: $u, kinds: [USER_DISABLED, USER_ENABLED] }) { edges { node { kind detail } } } }",
        json!({ "u": id }),
    )
    .await;
    let kinds: Vec<_> = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["USER_ENABLED", "USER_DISABLED"], "{log}");
    let detail = &log["data"]["auditLog"]["edges"][1]["node"]["detail"];
    assert_eq!(detail["sessions_revoked"], 1, "{detail}");
    assert!(!detail.to_string().contains("fraud"), "free text stays out");
}

#[tokio::test]
async fn a_disabled_account_cannot_complete_a_second_factor_login() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    let (token, _auth, codes) = enrolled(&app, &who).await;
    let id = my_id(&app, &token).await;
    let login = app.login(&who, PASSWORD).await;
    assert_eq!(code(&login), Some("MFA_REQUIRED"), "{login}");
    let mfa_token = login["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&app, &admin, DISABLE, json!({ "id": id })).await;
    let body = app
        .gql(
            None,
            "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken } }",
            json!({ "i": { "mfaToken": mfa_token, "recoveryCode": codes[0] } }),
        )
        .await;
    assert!(
        matches!(code(&body), Some("ACCOUNT_DISABLED" | "INVALID_TOKEN")),
        "{body}"
    );
    assert!(body["data"].is_null() || body["data"]["completeLogin"].is_null());
    // No factor was spent on the refusal: enabled again, the same recovery
    // code completes a new login.
    run(&app, &admin, ENABLE, json!({ "id": id })).await;
    let login = app.login(&who, PASSWORD).await;
    let mfa_token = login["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = app
        .gql(
            None,
            "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken } }",
            json!({ "i": { "mfaToken": mfa_token, "recoveryCode": codes[0] } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_with_a_passkey() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    add_passkey(&app, &token, &mut soft, "laptop").await;
    let id = my_id(&app, &token).await;
    run(&app, &admin, DISABLE, json!({ "id": id })).await;
    let (challenge, options) = start_login(&app).await;
    let assertion = soft.get(ORIGIN, &options);
    let body = finish_login(&app, &challenge, &assertion).await;
    assert_eq!(code(&body), Some("ACCOUNT_DISABLED"), "{body}");
    // Enabled again, the same passkey signs in.
    run(&app, &admin, ENABLE, json!({ "id": id })).await;
    let (challenge, options) = start_login(&app).await;
    let body = finish_login(&app, &challenge, &soft.get(ORIGIN, &options)).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = my_id(&app, &admin).await;
    for (query, vars) in [
        (SET_ROLE, json!({ "id": id, "role": "USER" })),
        (DISABLE, json!({ "id": id })),
        (
            "mutation($id: ID!) { deleteUser(id: $id) }",
            json!({ "id": id }),
        ),
    ] {
        let body = run(&app, &admin, query, vars).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "id");
    }
    // The CLI refuses too.
    let my_email = app.me(Some(&admin)).await["data"]["me"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = warden(
        &app.database_url(),
        &["admin", "demote", &my_email],
        "",
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last active administrator"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.me(Some(&admin)).await["data"]["me"]["role"], "ADMIN");

    // A disabled admin does not count: with a second admin disabled, the
    // first is still the last active one.
    let second = app.admin_token().await;
    let second_id = my_id(&app, &second).await;
    let body = run(&app, &admin, DISABLE, json!({ "id": second_id })).await;
    assert!(body["errors"].is_null(), "{body}");
    let body = run(&app, &admin, SET_ROLE, json!({ "id": id, "role": "USER" })).await;
    assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    // Once it is enabled again, the first admin may step down.
    run(&app, &admin, ENABLE, json!({ "id": second_id })).await;
    let body = run(&app, &admin, SET_ROLE, json!({ "id": id, "role": "USER" })).await;
    assert_eq!(body["data"]["setUserRole"]["role"], "USER", "{body}");
    let log = run(
        &app,
        &admin,
        "query($u: ID) { auditLog(filter: { userId: $u, kinds: [ROLE_CHANGED] }) { edges { node { detail } } } }",
        json!({ "u": id }),
    )
    .await;
    let detail = &log["data"]["auditLog"]["edges"][0]["node"]["detail"];
    assert_eq!(detail["to"], "USER", "{log}");
    assert_eq!(detail["by"], id.as_str());
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let (a, b) = (app.admin_token().await, app.admin_token().await);
    let (a_id, b_id) = (my_id(&app, &a).await, my_id(&app, &b).await);
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            run(&app, &a, SET_ROLE, json!({ "id": b_id, "role": "USER" })),
            run(&app, &b, SET_ROLE, json!({ "id": a_id, "role": "USER" })),
        );
        let admins = user::Entity::find()
            .filter(user::Column::Role.eq("ADMIN"))
            .count(app.state.db.read())
            .await
            .unwrap();
        assert_eq!(admins, 1, "{x}\n{y}");
        let refused = [&x, &y]
            .iter()
            .filter(|b| matches!(code(b), Some("BAD_USER_INPUT" | "FORBIDDEN")))
            .count();
        assert_eq!(refused, 1, "{x}\n{y}");
        // Back to two admins for the next round.
        let demoted = if x["errors"].is_null() { &b_id } else { &a_id };
        let email = user::Entity::find_by_id(uuid::Uuid::parse_str(demoted).unwrap())
            .one(app.state.db.read())
            .await
            .unwrap()
            .unwrap()
            .email;
        let out = warden(&app.database_url(), &["admin", "promote", &email], "", &[]).await;
        assert!(out.status.success());
    }
}

#[tokio::test]
async fn revoke_user_sessions_ends_every_session_of_the_account() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let second = s(
        &app.login(&who, PASSWORD).await["data"]["login"],
        "accessToken",
    )
    .to_owned();
    let id = my_id(&app, &token).await;
    let body = run(
        &app,
        &admin,
        "mutation($id: ID!) { revokeUserSessions(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(body["data"]["revokeUserSessions"], 2, "{body}");
    for t in [&token, &second] {
        assert_eq!(reason(&app.me(Some(t)).await), Some("REVOKED"));
    }
    // The account itself still works.
    assert!(app.login(&who, PASSWORD).await["errors"].is_null());
    let unknown = run(
        &app,
        &admin,
        "mutation($id: ID!) { revokeUserSessions(id: $id) }",
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
    )
    .await;
    assert_eq!(code(&unknown), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn unlock_account_clears_a_lockout() {
    let app = spawn_app_with(|c| c.lockout_threshold = 2).await;
    let admin = app.admin_token().await;
    let who = email();
    app.register(&who).await;
    for _ in 0..2 {
        app.login(&who, "wrong password 123").await;
    }
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("ACCOUNT_LOCKED")
    );
    let unlock = "mutation($e: String!) { unlockAccount(email: $e) }";
    let body = run(&app, &admin, unlock, json!({ "e": who.to_uppercase() })).await;
    assert_eq!(body["data"]["unlockAccount"], true, "{body}");
    assert!(app.login(&who, PASSWORD).await["errors"].is_null());
    let never = run(&app, &admin, unlock, json!({ "e": email() })).await;
    assert_eq!(never["data"]["unlockAccount"], false, "{never}");
}

#[tokio::test]
async fn reset_user_factors_removes_totp_recovery_codes_and_passkeys_and_mails_the_owner() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    let (token, auth, _codes) = enrolled(&app, &who).await;
    let mut soft = Soft::new();
    app.clock.advance(std::time::Duration::from_secs(30));
    let totp = auth.code_at(crate::mfa::unix(&app));
    add_passkey_with(&app, &token, &mut soft, "laptop", Some(&totp)).await;
    let id = my_id(&app, &token).await;
    let read = "query($id: ID!) { user(id: $id) { mfaEnabled holdings { activeSessions passkeys totpEnabled recoveryCodesLeft } } }";
    let before = run(&app, &admin, read, json!({ "id": id })).await;
    let user = &before["data"]["user"];
    assert_eq!(user["mfaEnabled"], true, "{before}");
    assert_eq!(user["holdings"]["passkeys"], 1);
    assert_eq!(user["holdings"]["totpEnabled"], true);
    assert_eq!(user["holdings"]["recoveryCodesLeft"], 10);
    assert_eq!(user["holdings"]["activeSessions"], 1);

    let body = run(
        &app,
        &admin,
        "mutation($id: ID!) { resetUserFactors(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(body["data"]["resetUserFactors"], true, "{body}");
    let after = run(&app, &admin, read, json!({ "id": id })).await;
    let user = &after["data"]["user"];
    assert_eq!(user["mfaEnabled"], false, "{after}");
    assert_eq!(user["holdings"]["passkeys"], 0);
    assert_eq!(user["holdings"]["totpEnabled"], false);
    assert_eq!(user["holdings"]["recoveryCodesLeft"], 0);
    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let db = app.state.db.read();
    assert!(totp_factor::Entity::find_by_id(uid)
        .one(db)
        .await
        .unwrap()
        .is_none());
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(uid))
        .count(db)
        .await
        .unwrap();
    assert_eq!(passkeys, 0);
    // The password alone signs in now, and the owner was told.
    let login = app.login(&who, PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");
    let notices = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Recipient.eq(who.as_str()))
        .filter(mail_outbox::Column::Kind.eq("factors-reset"))
        .count(db)
        .await
        .unwrap();
    assert_eq!(notices, 1);
    let missing = run(
        &app,
        &admin,
        read,
        json!({ "id": uuid::Uuid::now_v7().to_string() }),
    )
    .await;
    assert!(missing["data"]["user"].is_null(), "{missing}");
}

#[tokio::test]
async fn send_password_reset_mails_the_reset_link() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let id = my_id(&app, &token).await;
    let body = run(
        &app,
        &admin,
        "mutation($id: ID!) { sendPasswordReset(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(body["data"]["sendPasswordReset"], true, "{body}");
    let mails = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Recipient.eq(who.as_str()))
        .filter(mail_outbox::Column::Kind.eq("password-reset"))
        .count(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(mails, 1);
}

#[tokio::test]
async fn delete_user_leaves_no_row_with_the_email() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let who = email();
    // A failed login before the account existed names the address.
    app.login(&who, "wrong password 123").await;
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    app.login(&who, "wrong password 123").await;
    let id = my_id(&app, &token).await;
    let body = run(
        &app,
        &admin,
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(body["data"]["deleteUser"], true, "{body}");
    assert_eq!(reason(&app.me(Some(&token)).await), Some("REVOKED"));

    let uid = uuid::Uuid::parse_str(&id).unwrap();
    let db = app.state.db.read();
    assert!(user::Entity::find_by_id(uid)
        .one(db)
        .await
        .unwrap()
        .is_none());
    let sessions = session::Entity::find()
        .filter(session::Column::UserId.eq(uid))
        .count(db)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    let outbox = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Recipient.eq(who.as_str()))
        .count(db)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    let rows = audit_event::Entity::find().all(db).await.unwrap();
    for row in &rows {
        let text = format!("{:?} {:?}", row.detail, row.user_agent);
        assert!(!text.contains(&who), "{row:?}");
    }
    // The history stays under the id, and the deletion is recorded.
    let kept: Vec<_> = rows.iter().filter(|r| r.user_id == Some(uid)).collect();
    assert!(kept.iter().any(|r| r.kind == "USER_REGISTERED"));
    assert!(kept.iter().any(|r| r.kind == "USER_DELETED"));
    let again = run(
        &app,
        &admin,
        "mutation($id: ID!) { deleteUser(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(code(&again), Some("BAD_USER_INPUT"));
    // Every table, not only the ones above.
    let left = super::own_data::rows_naming(&app, &who).await;
    assert!(left.is_empty(), "{left:#?}");
    // (Last: a failed login for the address is a new row that names it.)
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
}
