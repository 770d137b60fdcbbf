//! Every error code the server answers with, as one enum: the `error` of every API error
//! body (`{"error": "<code>", "message": "..."}`), whichever layer refused (the HTTP layer,
//! sign-in, tenancy, or a gateway module's reducer). The API document lists them all, with
//! what each means, as the `ErrorCode` schema; a code not listed here cannot be answered.

use std::borrow::Cow;

macro_rules! codes {
    ($( $variant:ident = $text:literal : $meaning:literal, )*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( #[doc = $meaning] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order the document lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $text, )*
                }
            }

            /// What the code means (for the API document).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $meaning, )*
                }
            }
        }
    };
}

codes! {
    // The HTTP layer: requests refused before any handler runs.
    InvalidJson = "invalid_json": "The body is not JSON, or not JSON of the expected shape.",
    InvalidBody = "invalid_body": "The body could not be read.",
    InvalidQuery = "invalid_query": "The query string does not fit the operation's parameters.",
    InvalidPath = "invalid_path": "A path parameter does not fit the route.",
    InvalidForm = "invalid_form": "A form body does not fit the page's fields.",
    UnsupportedContentType = "unsupported_content_type": "The body is not `application/json`.",
    PayloadTooLarge = "payload_too_large": "The body is larger than the operation takes.",
    MethodNotAllowed = "method_not_allowed": "The path exists, but not with this method (see `Allow`).",
    NotFound = "not_found": "No such thing, or not one the caller may know of.",
    UnknownHost = "unknown_host": "The `Host` is not one of this server's names.",
    MisdirectedRequest = "misdirected_request": "This connection serves the app; open a new one for a container.",
    OriginRequired = "origin_required": "A browser request that changes something came without `Origin`.",
    OriginMismatch = "origin_mismatch": "The request's `Origin` is not this server's.",
    RateLimited = "rate_limited": "Too many attempts; wait for `Retry-After` seconds.",
    NotReady = "not_ready": "The server, or the part asked, is starting or stopping; try again.",
    Busy = "busy": "A bounded resource (password hashing) is full; try again in a second.",
    Internal = "internal": "Something failed on the server; it has been logged.",
    OperatorsOnly = "operators_only": "Only the instance admin, or a client on the server's machine, may read this.",
    InvalidInput = "invalid_input": "A field's value is refused; the message names the field.",
    // Accounts and sign-in.
    NotAuthenticated = "not_authenticated": "Sign in first (no session or token, or it ended).",
    InvalidCredentials = "invalid_credentials": "The login or the password is wrong.",
    SignupClosed = "signup_closed": "This server does not take new accounts.",
    AccountDisabled = "account_disabled": "The instance's administrator disabled this account.",
    LastAdmin = "last_admin": "An instance keeps at least one administrator who is not disabled.",
    SetupCodeRequired = "setup_code_required": "The server has no account yet: its first needs the setup code from the server's log.",
    InvalidSetupCode = "invalid_setup_code": "That is not the server's setup code.",
    WeakPassword = "weak_password": "The new password is too short or too common.",
    AccountExists = "account_exists": "That username or email address is taken.",
    SecondFactorRequired = "second_factor_required": "The account has a second factor: send its code.",
    InvalidCode = "invalid_code": "The second-factor or recovery code is wrong.",
    SecondFactorLocked = "second_factor_locked": "Too many wrong codes for this account; wait for `Retry-After`.",
    ReauthenticationRequired = "reauthentication_required": "Confirm it is you (password, code or passkey) before this change.",
    SessionRequired = "session_required": "Only a signed-in session may do this, not a token.",
    SessionTokenInUrl = "session_token_in_url": "A session token was sent in the URL; only personal access tokens go there.",
    NotASession = "not_a_session": "A token signs nothing out; revoke it instead.",
    TokenNameTaken = "token_name_taken": "You already have a token with that name.",
    TotpAlreadyEnabled = "totp_already_enabled": "Authenticator codes are on already.",
    TotpNotStarted = "totp_not_started": "Start setting up authenticator codes first.",
    TotpNotEnabled = "totp_not_enabled": "Authenticator codes are not on.",
    InvalidLink = "invalid_link": "The emailed link is wrong, used, or expired.",
    AlreadyVerified = "already_verified": "The email address is verified already.",
    ProviderFailed = "provider_failed": "The sign-in provider refused, or answered something wrong.",
    ProviderNotLinked = "provider_not_linked": "No account of ours is linked to that provider account.",
    ProviderAlreadyLinked = "provider_already_linked": "That provider account is linked to someone already.",
    LinkNeedsPost = "link_needs_post": "Linking a provider starts with a POST from a signed-in page.",
    LastSignInMethod = "last_sign_in_method": "This is the account's last way to sign in; add another first.",
    PasskeyFailed = "passkey_failed": "The passkey's answer did not check out.",
    PasskeyNameTaken = "passkey_name_taken": "You already have a passkey with that name.",
    // Organizations, projects, members, roles and invitations.
    Forbidden = "forbidden": "You may see this, but not do that (the message names the permission).",
    AlreadyExists = "already_exists": "Something with that name or id exists already.",
    ConfirmationMismatch = "confirmation_mismatch": "To confirm, send the name asked for as `confirm`.",
    LastOwner = "last_owner": "An organization keeps at least one owner.",
    RoleInUse = "role_in_use": "The role is given to members or invitations.",
    RoleExceedsYours = "role_exceeds_yours": "The role holds permissions you do not hold yourself.",
    OwnRole = "own_role": "Nobody changes their own role; leave, or ask another admin.",
    InvalidInvitation = "invalid_invitation": "The invitation is wrong, used, revoked or expired.",
    InvitationForAnotherAddress = "invitation_for_another_address": "The invitation is for another email address.",
    TooManySockets = "too_many_sockets": "Too many collaboration connections at once; close some.",
    NotAWebsocket = "not_a_websocket": "This endpoint speaks WebSocket only.",
    // The gateway: events, history, documents.
    Malformed = "malformed": "A message to the gateway is malformed.",
    ForbiddenEvent = "forbidden_event": "Only the gateway itself sends this event.",
    UnknownEvent = "unknown_event": "No module has an event of that type.",
    InvalidEvent = "invalid_event": "The event does not fit its type.",
    DocumentFull = "document_full": "The project's document is at its size limit.",
    HistoryPointNotFound = "history_point_not_found": "No such history point in this project.",
    NothingToUndo = "nothing_to_undo": "You have no change here to undo.",
    NothingToRedo = "nothing_to_redo": "You have no undone change here to redo.",
    AlreadyInitialised = "already_initialised": "The document was set up already.",
    Locked = "locked": "Someone else has locked that card.",
    NodeExists = "node_exists": "A node with that id exists already.",
    NodeNotFound = "node_not_found": "No such node (card) in this project.",
    EdgeExists = "edge_exists": "An edge with that id exists already.",
    EdgeNotFound = "edge_not_found": "No such edge in this project.",
    InvalidEdge = "invalid_edge": "The edge's ends or its kind are refused.",
    InvalidId = "invalid_id": "An id is empty, too long, or not of the allowed characters.",
    InvalidKind = "invalid_kind": "A card or edge kind is not one the board knows.",
    InvalidName = "invalid_name": "A name is empty or too long.",
    InvalidPosition = "invalid_position": "A position or a move is out of range.",
    InvalidSize = "invalid_size": "A size is out of range.",
    InvalidStyle = "invalid_style": "A style (colour, shape, font) is not one the board knows.",
    InvalidRef = "invalid_ref": "A reference to another card or edge in the same event is wrong.",
    DataTooLarge = "data_too_large": "A card's data is larger than a card may carry.",
    TextTooLong = "text_too_long": "A text is longer than a card may carry.",
    TooFew = "too_few": "The event needs more items than it names.",
    TooMany = "too_many": "The event names more items than one event may.",
    MainView = "main_view": "The board's main view cannot be renamed or deleted.",
    ViewExists = "view_exists": "A board view with that id exists already.",
    ViewNotFound = "view_not_found": "No such board view.",
    InvalidBoardFile = "invalid_board_file": "The file to import is not a board file we read.",
    ContainerNotFound = "container_not_found": "No such container in this project.",
    InvalidImage = "invalid_image": "The image is not in the catalogue, or a custom image's reference is not one.",
    InvalidService = "invalid_service": "A custom image's services are missing, too many, or their names or ports are refused.",
    InvalidCommand = "invalid_command": "A container's start command or preparing step is empty, too long, or holds control characters.",
    ImageNotFound = "image_not_found": "No such entry in the organization's container catalogue.",
    ImageExists = "image_exists": "The organization's catalogue has an entry of that key already (or it is a built-in key).",
    TooManyImages = "too_many_images": "The organization's catalogue holds as many entries as it may.",
    VpnOff = "vpn_off": "The server's VPN is off (`[vpn] listen`), so containers cannot join its network.",
    LabelTaken = "label_taken": "A container's service label is held by another container.",
    InvalidEnrollment = "invalid_enrollment": "The enrollment token was used already, has expired, or never existed.",
    InvalidAgentCredential = "invalid_agent_credential": "The agent's credential is not valid (its container was deleted or enrolled again).",
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let mut description = String::from(
            "A stable, machine-readable error code: one of these, and never another.\n",
        );
        for c in Self::ALL {
            description.push_str(&format!("\n- `{}`: {}", c.as_str(), c.meaning()));
        }
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(Self::ALL.iter().map(|c| c.as_str())))
            .description(Some(description))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s}"
            );
            assert!(c.meaning().ends_with('.'), "{s}");
        }
    }
}
