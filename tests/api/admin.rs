//! Administration over GraphQL: the admin guard, disabling, the last
//! admin, the `users` connection, and the operations on one account.

mod accounts;
mod own_data;
mod search_plans;
mod users;

use serde_json::{json, Value};

use crate::helpers::{code, s, TestApp};

/// The id of the account of `token`.
pub async fn my_id(app: &TestApp, token: &str) -> String {
    let me = app.me(Some(token)).await;
    s(&me["data"]["me"], "id").to_owned()
}

/// Runs `query` as `token`; the body.
pub async fn run(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.gql(Some(token), query, variables).await
}

#[tokio::test]
async fn every_admin_operation_is_forbidden_to_a_normal_user() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = my_id(&app, &admin).await;
    let user = s(&app.register(&crate::helpers::email()).await, "accessToken").to_owned();
    let operations = [
        "{ users { edges { node { id } } } }",
        "query($id: ID!) { user(id: $id) { id } }",
        "mutation($id: ID!) { setUserRole(id: $id, role: USER) { id } }",
        "mutation($id: ID!) { disableUser(id: $id, reason: \"x\") { id } }",
        "mutation($id: ID!) { enableUser(id: $id) { id } }",
        "mutation($id: ID!) { revokeUserSessions(id: $id) }",
        "mutation { unlockAccount(email: \"a@example.com\") }",
        "mutation($id: ID!) { resetUserFactors(id: $id) }",
        "mutation($id: ID!) { sendPasswordReset(id: $id) }",
        "mutation($id: ID!) { deleteUser(id: $id) }",
    ];
    let created = run(
        &app,
        &admin,
        "mutation { createApiKey(input: { name: \"ops\", scopes: [USER, INTROSPECT] }) { secret } }",
        json!({}),
    )
    .await;
    let admin_user_key = s(&created["data"]["createApiKey"], "secret").to_owned();
    for op in operations {
        let vars = if op.contains("$id") {
            json!({ "id": admin_id })
        } else {
            json!({})
        };
        let body = run(&app, &user, op, vars.clone()).await;
        assert_eq!(code(&body), Some("FORBIDDEN"), "{op}: {body}");
        // An administrator's key without the ADMIN scope acts as a user.
        let body = run(&app, &admin_user_key, op, vars).await;
        assert_eq!(code(&body), Some("FORBIDDEN"), "a USER key: {op}: {body}");
    }
    // Nothing happened to the admin, and every refusal was audited.
    let me = app
        .gql(Some(&admin), "{ me { role disabled } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN", "{me}");
    assert_eq!(me["data"]["me"]["disabled"], false);
    let log = run(
        &app,
        &user,
        "{ auditLog(first: 50, filter: { kinds: [ACCESS_DENIED] }) { edges { node { detail } } } }",
        json!({}),
    )
    .await;
    let denied = log["data"]["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(denied.len(), operations.len(), "{log}");
    // Without a token: UNAUTHENTICATED, not FORBIDDEN.
    let anonymous = app
        .gql(None, "{ users { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(code(&anonymous), Some("UNAUTHENTICATED"));
}
