//! The schema, written once for both backends (types both share).

diesel::table! {
    vpn_peers (id) {
        id -> BigInt,
        name -> Text,
        public_key -> Text,
        address -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        username_lower -> Text,
        email -> Text,
        email_lower -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        is_admin -> Bool,
        created_at -> Timestamp,
        email_verified -> Bool,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        user_agent -> Text,
        ip -> Text,
        pending_second_factor -> Bool,
    }
}

diesel::table! {
    totp (user_id) {
        user_id -> Text,
        secret -> Text,
        enabled -> Bool,
        last_step -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_links (id) {
        id -> Text,
        token_hash -> Text,
        purpose -> Text,
        user_id -> Text,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    identities (id) {
        id -> Text,
        user_id -> Text,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        display -> Text,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ceremonies (handle_hash) {
        handle_hash -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        credential_id -> Text,
        passkey -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    organizations (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        personal -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    roles (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        name_lower -> Text,
        scope -> Text,
        description -> Text,
        permissions -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    org_members (org_id, user_id) {
        org_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    projects (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        name_lower -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    project_members (project_id, user_id) {
        project_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        org_id -> Text,
        email -> Text,
        email_lower -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        accepted_at -> Nullable<Timestamp>,
        accepted_by -> Nullable<Text>,
    }
}

diesel::table! {
    doc_updates (project_id, seq) {
        project_id -> Text,
        seq -> BigInt,
        data -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    doc_snapshots (project_id) {
        project_id -> Text,
        seq -> BigInt,
        data -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    doc_history (id) {
        id -> Text,
        project_id -> Text,
        name -> Text,
        seq -> BigInt,
        data -> Binary,
        automatic -> Bool,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(email_links -> users (user_id));
diesel::joinable!(identities -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::table! {
    sign_in_reviews (user_id) {
        user_id -> Text,
        asked_at -> Timestamp,
    }
}

diesel::joinable!(sign_in_reviews -> users (user_id));
diesel::joinable!(org_members -> organizations (org_id));
diesel::joinable!(org_members -> users (user_id));
diesel::joinable!(projects -> organizations (org_id));
diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(project_members -> users (user_id));
diesel::joinable!(roles -> organizations (org_id));
diesel::joinable!(invitations -> organizations (org_id));
diesel::joinable!(doc_updates -> projects (project_id));
diesel::joinable!(doc_snapshots -> projects (project_id));
diesel::joinable!(doc_history -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    instance_settings,
    project_visits,
    containers,
    container_routes,
    container_images,
    container_enrollments,
    sessions,
    api_tokens,
    totp,
    recovery_codes,
    email_links,
    identities,
    ceremonies,
    passkeys,
    organizations,
    roles,
    org_members,
    projects,
    project_members,
    invitations,
    doc_updates,
    doc_snapshots,
    doc_history,
    sign_in_reviews
);

diesel::table! {
    acme_accounts (directory) {
        directory -> Text,
        credentials -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    acme_certificates (name) {
        name -> Text,
        directory -> Text,
        domains -> Text,
        chain_pem -> Text,
        key_pem -> Text,
        issuer -> Text,
        not_before -> Timestamp,
        not_after -> Timestamp,
        issued_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        kind -> Text,
        actor_id -> Nullable<Text>,
        target -> Nullable<Text>,
        ip -> Text,
        detail -> Text,
    }
}

diesel::table! {
    instance_settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    containers (id) {
        id -> Text,
        org_id -> Text,
        project_id -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        credential_hash -> Nullable<Text>,
        enrolled_at -> Nullable<Timestamp>,
        vpn_peer -> Nullable<Text>,
        image -> Text,
        command -> Nullable<Text>,
    }
}

diesel::table! {
    container_images (org_id, slug) {
        org_id -> Text,
        slug -> Text,
        title -> Text,
        description -> Text,
        image_ref -> Text,
        services -> Text,
        command -> Nullable<Text>,
        prepare -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    container_routes (label) {
        label -> Text,
        container_id -> Text,
        service -> Text,
        port -> Integer,
        terminal -> Bool,
    }
}

diesel::table! {
    container_enrollments (token_hash) {
        token_hash -> Text,
        container_id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(container_routes -> containers (container_id));
diesel::joinable!(container_enrollments -> containers (container_id));

diesel::table! {
    project_visits (user_id, project_id) {
        user_id -> Text,
        project_id -> Text,
        opened_at -> Timestamp,
    }
}

diesel::joinable!(project_visits -> projects (project_id));
