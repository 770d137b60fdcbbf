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
