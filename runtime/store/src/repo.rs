//! Repository traits: what the rest of the platform may ask of the store.
//!
//! The traits are **object-safe** (`#[async_trait]`, boxed futures), so the API can hold an
//! `Arc<dyn Repository>` and its tests can substitute a fake; the cost, one allocation per
//! call, is noise next to a database round trip. [`crate::Store`] implements all of them for
//! both backends.
//!
//! Rules every implementation keeps:
//!
//! - Every method that takes an `account` sees only that account's objects: another account's
//!   id reads as `Ok(None)` from a `get_…` and as [`StoreError::NotFound`](crate::StoreError)
//!   from an update or delete, exactly like an id that never existed.
//! - Ids given as references (a lease's app, a connection's outbound voice profile…) must name
//!   a live object of the same account, or the call fails with `NotFound` for that id.
//! - Soft-deleted objects (`deleted_on` set) are invisible to every method. Deleting an object
//!   detaches it from the objects that point at it.
//! - The few methods without an `account` (marked *unscoped*) are for routing and
//!   authentication, which start from a number, an address or a credential.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::model::*;

/// Most rows one list call returns; larger `take` values are capped to this.
pub const MAX_TAKE: u32 = 1000;

/// `take` when the caller gives none.
pub const DEFAULT_TAKE: u32 = 50;

/// Sort direction by `created_on`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Paging and ordering of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListParams {
    pub take: u32,
    pub skip: u32,
    /// Order by `created_on` (ties broken by id, so pages are stable).
    pub order: Order,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams { take: DEFAULT_TAKE, skip: 0, order: Order::Asc }
    }
}

impl ListParams {
    pub fn page(take: u32, skip: u32) -> Self {
        ListParams { take, skip, ..Default::default() }
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.take.min(MAX_TAKE))
    }

    pub(crate) fn offset(&self) -> i64 {
        i64::from(self.skip)
    }
}

/// One page of a list: `total` counts every match, `data` holds this page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct List<T> {
    pub take: u32,
    pub skip: u32,
    pub total: i64,
    pub data: Vec<T>,
}

impl<T> List<T> {
    /// The same page with each row turned into `U` (an API view of a stored object).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> List<U> {
        List {
            take: self.take,
            skip: self.skip,
            total: self.total,
            data: self.data.into_iter().map(f).collect(),
        }
    }
}

/// Which leases a list returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeaseState {
    /// Leases in force.
    #[default]
    Active,
    /// Released leases (history).
    Released,
    /// Both.
    All,
}

/// Filter for [`LeaseRepo::list_leases`].
#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    pub state: LeaseState,
    pub sip_connection: Option<Uuid>,
    pub sip_control_app: Option<Uuid>,
}

/// Filter for [`NumberRepo::search_numbers`]; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct NumberFilter {
    pub npa: Option<i32>,
    pub state: Option<String>,
    /// A North American number's ten national digits, each a digit or `*` for any
    /// (`202*******`, `*******917`); checked by the caller, numbers outside +1 never match.
    pub pattern: Option<String>,
    /// Only numbers that have voice (when `true`).
    pub voice: bool,
    /// Only numbers that have SMS (when `true`).
    pub sms: bool,
    /// Only numbers that can be leased now.
    pub available_only: bool,
}

/// Filter for [`OrderRepo::search_orders`]; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    /// Orders with an item for this number.
    pub tn: Option<Tn>,
}

/// Accounts and their passwords.
#[async_trait]
pub trait AccountRepo: Send + Sync {
    /// Creates an account, hashing the password with argon2id. `Conflict` on a taken email.
    async fn create_account(&self, new: NewAccount) -> Result<Account>;
    async fn get_account(&self, account: Uuid) -> Result<Option<Account>>;
    async fn update_account(&self, account: Uuid, patch: AccountPatch) -> Result<Account>;
    async fn set_password(&self, account: Uuid, password: &str) -> Result<()>;
    /// Soft-deletes the account and revokes its tokens.
    async fn delete_account(&self, account: Uuid) -> Result<()>;
    /// *Unscoped* (login): the live account with this email (case-insensitive).
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>>;
    /// *Unscoped* (login): the account, if the email exists and the password matches.
    async fn verify_password(&self, email: &str, password: &str) -> Result<Option<Account>>;
}

/// API tokens. The plain token exists only in [`CreatedToken`].
#[async_trait]
pub trait TokenRepo: Send + Sync {
    async fn create_token(&self, account: Uuid, new: NewApiToken) -> Result<CreatedToken>;
    async fn list_tokens(&self, account: Uuid, params: ListParams) -> Result<List<ApiToken>>;
    async fn delete_token(&self, account: Uuid, token: Uuid) -> Result<()>;
    /// Deletes every token of the account; returns how many there were.
    async fn delete_all_tokens(&self, account: Uuid) -> Result<u64>;
    /// *Unscoped* (authentication): the unexpired token whose SHA-256 is `sha256_hex`.
    async fn token_by_hash(&self, sha256_hex: &str) -> Result<Option<ApiToken>>;
    /// *Unscoped*: hashes `plain` and looks it up (see [`TokenRepo::token_by_hash`]).
    async fn token_by_plain(&self, plain: &str) -> Result<Option<ApiToken>> {
        self.token_by_hash(&crate::secret::sha256_hex(plain.as_bytes())).await
    }
}

/// The operator's number inventory (not account-scoped; the operator's tools and the order
/// flow use it).
#[async_trait]
pub trait NumberRepo: Send + Sync {
    /// Adds numbers, or updates their npa/state/features if present (availability is kept).
    async fn upsert_numbers(&self, numbers: &[NumberInventory]) -> Result<()>;
    async fn get_number(&self, tn: Tn) -> Result<Option<NumberInventory>>;
    /// Ordered by number.
    async fn search_numbers(&self, filter: NumberFilter, params: ListParams)
    -> Result<List<NumberInventory>>;
}

/// Numbers leased by accounts.
#[async_trait]
pub trait LeaseRepo: Send + Sync {
    /// Leases an available number from the inventory. `NotFound` (kind `Number`) if the
    /// operator does not hold it, `NumberUnavailable` if it is not for lease, `Conflict` if
    /// another lease holds it.
    async fn lease_tn(&self, account: Uuid, new: NewLease) -> Result<TnLease>;
    /// Gets a lease, released ones included (they are the account's history).
    async fn get_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<TnLease>>;
    async fn list_leases(
        &self,
        account: Uuid,
        filter: LeaseFilter,
        params: ListParams,
    ) -> Result<List<TnLease>>;
    /// Updates an active lease.
    async fn update_lease(&self, account: Uuid, lease: Uuid, patch: LeasePatch) -> Result<TnLease>;
    /// Releases an active lease: the number returns to the inventory.
    async fn release_lease(&self, account: Uuid, lease: Uuid) -> Result<TnLease>;
    /// *Unscoped* (routing of inbound calls and SMS): the active lease of a number.
    async fn lease_by_tn(&self, tn: Tn) -> Result<Option<TnLease>>;
    /// *Unscoped* (monthly number charges): active leases paid only until `at` or earlier
    /// whose renewal is not waiting for a retry after `at`, the longest due first, at most
    /// `limit`.
    async fn leases_due(&self, at: Timestamp, limit: i64) -> Result<Vec<TnLease>>;
    /// *Unscoped* (monthly number charges): the renewal of `lease`, still paid until
    /// `paid_until`, failed: try it again at `retry_on`. `Some(true)` for the month's first
    /// failure (once, whichever node), `Some(false)` for a later one, `None` when the lease was
    /// renewed or released meanwhile. A paid renewal clears the retry.
    async fn defer_renewal(
        &self,
        lease: Uuid,
        paid_until: Timestamp,
        retry_on: Timestamp,
    ) -> Result<Option<bool>>;
}

/// Number orders, kept with each item's outcome.
#[async_trait]
pub trait OrderRepo: Send + Sync {
    /// Records an order whose items were processed (leased or not) by the caller.
    async fn create_order(&self, account: Uuid, items: Vec<OrderItem>) -> Result<TnOrder>;
    async fn get_order(&self, account: Uuid, order: Uuid) -> Result<Option<TnOrder>>;
    async fn search_orders(
        &self,
        account: Uuid,
        filter: OrderFilter,
        params: ListParams,
    ) -> Result<List<TnOrder>>;
}

/// Filter for [`CallLogRepo::search_calls`]; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub direction: Option<CallDirection>,
    pub state: Option<CallState>,
    /// The caller, exactly.
    pub from: Option<String>,
    /// The callee, exactly.
    pub to: Option<String>,
    /// Calls that started at or after this.
    pub since: Option<Timestamp>,
    /// Calls that started before this.
    pub until: Option<Timestamp>,
}

/// The call log (CDRs) and recordings. The platform writes; the API reads.
#[async_trait]
pub trait CallLogRepo: Send + Sync {
    async fn record_call_start(&self, account: Uuid, new: NewCallRecord) -> Result<CallRecord>;
    async fn record_call_answer(&self, account: Uuid, call: Uuid, at: Timestamp) -> Result<()>;
    /// Keeps what an inbound call's STIR/SHAKEN verification found on its CDR.
    async fn record_call_shaken(&self, account: Uuid, call: Uuid, shaken: CallShaken) -> Result<()>;
    async fn record_call_end(&self, account: Uuid, call: Uuid, end: CallEnd) -> Result<()>;
    /// *Unscoped* (a node's start-up): ends every call of `node` still open in the log — the
    /// node died while they were up — as failed at `at` with `reason` and Q.850 41 (temporary
    /// failure). Other nodes' calls are never touched. Returns how many were closed.
    async fn close_abandoned_calls(&self, node: &str, at: Timestamp, reason: &str) -> Result<u64>;
    async fn get_call(&self, account: Uuid, call: Uuid) -> Result<Option<CallRecord>>;
    async fn search_calls(
        &self,
        account: Uuid,
        filter: CallFilter,
        params: ListParams,
    ) -> Result<List<CallRecord>>;
    /// Records a recording of the account's call `call` (which must be in the log); its WAV
    /// file takes `size_bytes`.
    async fn add_recording(
        &self,
        account: Uuid,
        call: Uuid,
        recording: Uuid,
        name: &str,
        duration_ms: i64,
        size_bytes: i64,
    ) -> Result<RecordingRecord>;
    async fn get_recording(&self, account: Uuid, recording: Uuid) -> Result<Option<RecordingRecord>>;
    /// Deletes the account's recording (its row; the caller deletes the file) and returns what
    /// it was. `NotFound` for another account's.
    async fn delete_recording(&self, account: Uuid, recording: Uuid) -> Result<RecordingRecord>;
    /// How many recordings the account keeps and their bytes together (its recording quota).
    async fn recording_usage(&self, account: Uuid) -> Result<RecordingUsage>;
    /// Stores what the speech-to-text provider heard in a recording.
    async fn set_transcript(&self, account: Uuid, recording: Uuid, text: &str) -> Result<()>;
    /// Oldest first.
    async fn call_recordings(&self, account: Uuid, call: Uuid) -> Result<Vec<RecordingRecord>>;
}

/// Event subscriptions, webhook signing keys and the webhook outbox.
#[async_trait]
pub trait WebhookRepo: Send + Sync {
    async fn create_subscription(
        &self,
        account: Uuid,
        new: NewEventSubscription,
    ) -> Result<EventSubscription>;
    async fn list_subscriptions(&self, account: Uuid, params: ListParams) -> Result<List<EventSubscription>>;
    async fn delete_subscription(&self, account: Uuid, subscription: Uuid) -> Result<()>;
    /// Every live webhook subscription of the account (for fan-out; at most [`MAX_TAKE`]).
    async fn webhook_subscriptions(&self, account: Uuid) -> Result<Vec<EventSubscription>>;
    /// The account's signing key, if it has one.
    async fn signing_key(&self, account: Uuid) -> Result<Option<SigningKey>>;
    /// Stores `key` unless the account has one already; returns the account's key either way
    /// (so two racing first uses agree on one key).
    async fn insert_signing_key(&self, account: Uuid, key: SigningKey) -> Result<SigningKey>;
    /// Adds deliveries in one transaction, positioned after every earlier one in the given
    /// order; returns them as stored.
    async fn enqueue_deliveries(&self, deliveries: Vec<NewWebhookDelivery>) -> Result<Vec<WebhookDelivery>>;
    /// Pending deliveries after `position`, in position order (a dispatcher's backlog read):
    /// those claimed by `node` (written by it, or taken over from a dead node), or with `None`
    /// every pending one (a lone dispatcher without a node name).
    async fn pending_deliveries(
        &self,
        node: Option<&str>,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Marks deliveries delivered (one more attempt each), in one statement.
    async fn mark_delivered(&self, deliveries: &[Uuid]) -> Result<()>;
    /// Records a failed attempt: `retry_at` to try again, `None` to give up.
    async fn mark_attempt_failed(
        &self,
        delivery: Uuid,
        attempts: i32,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()>;
    /// Deliveries of the account, newest first (for inspection and tests).
    async fn list_deliveries(&self, account: Uuid, params: ListParams) -> Result<List<WebhookDelivery>>;
    /// *Unscoped* (the outbox's retention): deletes up to `limit` deliveries that finished
    /// before `before` — delivered then, or given up then — and returns how many. Pending ones
    /// are never touched, nor the row with the highest position (positions continue after it).
    async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64>;
}

/// Messaging profiles.
#[async_trait]
pub trait MessagingProfileRepo: Send + Sync {
    async fn create_messaging_profile(
        &self,
        account: Uuid,
        new: NewMessagingProfile,
    ) -> Result<MessagingProfile>;
    async fn get_messaging_profile(&self, account: Uuid, profile: Uuid) -> Result<Option<MessagingProfile>>;
    async fn list_messaging_profiles(
        &self,
        account: Uuid,
        params: ListParams,
    ) -> Result<List<MessagingProfile>>;
    async fn update_messaging_profile(
        &self,
        account: Uuid,
        profile: Uuid,
        patch: MessagingProfilePatch,
    ) -> Result<MessagingProfile>;
    /// Soft-deletes the profile and detaches it from the leases that name it.
    async fn delete_messaging_profile(&self, account: Uuid, profile: Uuid) -> Result<()>;
}

/// Verified caller IDs: numbers an account proved it answers (see
/// [`crate::model::VerifiedNumber`]).
#[async_trait]
pub trait VerifiedNumberRepo: Send + Sync {
    /// A pending number with the hash of the code sent to it. `Conflict` on `tn` when the
    /// account has the number already (pending or verified).
    async fn create_verified_number(
        &self,
        account: Uuid,
        tn: Tn,
        code_hash: String,
        expired_on: Timestamp,
    ) -> Result<VerifiedNumber>;
    async fn get_verified_number(&self, account: Uuid, number: Uuid) -> Result<Option<VerifiedNumber>>;
    async fn list_verified_numbers(&self, account: Uuid, params: ListParams) -> Result<List<VerifiedNumber>>;
    async fn delete_verified_number(&self, account: Uuid, number: Uuid) -> Result<()>;
    /// Counts a wrong code against a pending number.
    async fn count_verification_attempt(&self, account: Uuid, number: Uuid) -> Result<()>;
    /// Marks a pending number verified (a verified one stays as it is); the number as now.
    async fn mark_number_verified(&self, account: Uuid, number: Uuid) -> Result<VerifiedNumber>;
    /// Whether `tn` is a verified caller ID of the account.
    async fn is_verified_number(&self, account: Uuid, tn: Tn) -> Result<bool>;
}

/// One-time invites to set a SIP connection's credentials.
#[async_trait]
pub trait SipInviteRepo: Send + Sync {
    /// A new invite; the plain token exists only in the answer.
    async fn create_invite(
        &self,
        account: Uuid,
        connection: Uuid,
        name: String,
        expired_on: Timestamp,
    ) -> Result<CreatedSipInvite>;
    /// Invites of a connection, used and expired ones included.
    async fn list_invites(
        &self,
        account: Uuid,
        connection: Uuid,
        params: ListParams,
    ) -> Result<List<SipInvite>>;
    /// Revokes an invite.
    async fn delete_invite(&self, account: Uuid, connection: Uuid, invite: Uuid) -> Result<()>;
    /// *Unscoped* (the token is the credential): marks the live, unused, unexpired invite with
    /// this token used and returns it; `None` for any other token. Atomic: of two concurrent
    /// calls with one token, one gets the invite.
    async fn use_invite(&self, token: &str) -> Result<Option<SipInvite>>;
}

/// TN profiles and their caller-ID lists.
#[async_trait]
pub trait TnProfileRepo: Send + Sync {
    async fn create_tn_profile(&self, account: Uuid, new: NewTnProfile) -> Result<TnProfile>;
    async fn get_tn_profile(&self, account: Uuid, profile: Uuid) -> Result<Option<TnProfile>>;
    async fn list_tn_profiles(&self, account: Uuid, params: ListParams) -> Result<List<TnProfile>>;
    async fn rename_tn_profile(&self, account: Uuid, profile: Uuid, name: String) -> Result<TnProfile>;
    /// Adds then removes entries of one list (adding a present entry is not an error).
    async fn update_caller_list(
        &self,
        account: Uuid,
        profile: Uuid,
        list: CallerList,
        add: &[String],
        remove: &[String],
    ) -> Result<TnProfile>;
    async fn delete_tn_profile(&self, account: Uuid, profile: Uuid) -> Result<()>;
}

/// Outbound voice profiles.
#[async_trait]
pub trait OutboundVoiceProfileRepo: Send + Sync {
    async fn create_ovp(&self, account: Uuid, new: NewOutboundVoiceProfile) -> Result<OutboundVoiceProfile>;
    async fn get_ovp(&self, account: Uuid, ovp: Uuid) -> Result<Option<OutboundVoiceProfile>>;
    async fn list_ovps(&self, account: Uuid, params: ListParams) -> Result<List<OutboundVoiceProfile>>;
    async fn update_ovp(
        &self,
        account: Uuid,
        ovp: Uuid,
        patch: OutboundVoiceProfilePatch,
    ) -> Result<OutboundVoiceProfile>;
    async fn delete_ovp(&self, account: Uuid, ovp: Uuid) -> Result<()>;
}

/// SIP connections (trunks).
#[async_trait]
pub trait SipConnectionRepo: Send + Sync {
    /// `Conflict` on a subdomain a live connection has.
    async fn create_connection(&self, account: Uuid, new: NewSipConnection) -> Result<SipConnection>;
    async fn get_connection(&self, account: Uuid, conn: Uuid) -> Result<Option<SipConnection>>;
    async fn list_connections(&self, account: Uuid, params: ListParams) -> Result<List<SipConnection>>;
    async fn update_connection(
        &self,
        account: Uuid,
        conn: Uuid,
        patch: SipConnectionPatch,
    ) -> Result<SipConnection>;
    async fn delete_connection(&self, account: Uuid, conn: Uuid) -> Result<()>;
    /// *Unscoped* (trunk authentication): the active connections that accept this source IP —
    /// their `ip` or the IP of one of their `failover_addresses`.
    async fn connections_by_ip(&self, ip: &str) -> Result<Vec<SipConnection>>;
    /// *Unscoped* (trunk digest authentication): the active connection with this subdomain label.
    async fn connection_by_subdomain(&self, subdomain: &str) -> Result<Option<SipConnection>>;
}

/// SIP Control Apps and their component versions.
#[async_trait]
pub trait SipControlAppRepo: Send + Sync {
    async fn create_app(&self, account: Uuid, new: NewSipControlApp) -> Result<SipControlApp>;
    async fn get_app(&self, account: Uuid, app: Uuid) -> Result<Option<SipControlApp>>;
    async fn list_apps(&self, account: Uuid, params: ListParams) -> Result<List<SipControlApp>>;
    async fn update_app(&self, account: Uuid, app: Uuid, patch: SipControlAppPatch) -> Result<SipControlApp>;
    async fn delete_app(&self, account: Uuid, app: Uuid) -> Result<()>;
    /// Stores a new component version (already validated by the caller) and makes it current,
    /// unless the app keeps `max_versions` already: then `Ok(None)` and nothing is stored. The
    /// count and the insert are one statement, so uploads racing each other cannot pass the
    /// quota together.
    async fn add_component_version_within(
        &self,
        account: Uuid,
        app: Uuid,
        bytes: &[u8],
        max_versions: u32,
    ) -> Result<Option<ComponentVersion>>;
    /// As [`Self::add_component_version_within`] without a quota (provisioning, tests).
    async fn add_component_version(
        &self,
        account: Uuid,
        app: Uuid,
        bytes: &[u8],
    ) -> Result<ComponentVersion> {
        self.add_component_version_within(account, app, bytes, u32::MAX).await?.ok_or(
            crate::StoreError::Invalid { field: "component", reason: "the app keeps too many versions" },
        )
    }
    /// Newest first.
    async fn list_component_versions(&self, account: Uuid, app: Uuid) -> Result<Vec<ComponentVersion>>;
    async fn component_bytes(&self, account: Uuid, version: Uuid) -> Result<Option<Vec<u8>>>;
    /// Rolls the app to another of its versions.
    async fn set_current_component(&self, account: Uuid, app: Uuid, version: Uuid) -> Result<SipControlApp>;
    /// Deletes one of the app's versions (its bytes with it). `WrongState` for the app's current
    /// version: roll the app to another first.
    async fn delete_component_version(&self, account: Uuid, app: Uuid, version: Uuid) -> Result<()>;
}

/// SIP domains and their users.
#[async_trait]
pub trait SipDomainRepo: Send + Sync {
    /// `Conflict` if a live domain (of any account) has the name.
    async fn create_domain(&self, account: Uuid, new: NewSipDomain) -> Result<SipDomain>;
    async fn get_domain(&self, account: Uuid, domain: Uuid) -> Result<Option<SipDomain>>;
    async fn list_domains(&self, account: Uuid, params: ListParams) -> Result<List<SipDomain>>;
    async fn update_domain(&self, account: Uuid, domain: Uuid, patch: SipDomainPatch) -> Result<SipDomain>;
    /// Soft-deletes the domain and its users.
    async fn delete_domain(&self, account: Uuid, domain: Uuid) -> Result<()>;
    /// *Unscoped* (registrar, routing): the live domain with this name.
    async fn domain_by_name(&self, name: &str) -> Result<Option<SipDomain>>;

    /// `Conflict` if the domain has a live user with the login.
    async fn create_sip_user(&self, account: Uuid, domain: Uuid, new: NewSipUser) -> Result<SipUser>;
    async fn get_sip_user(&self, account: Uuid, user: Uuid) -> Result<Option<SipUser>>;
    async fn list_sip_users(&self, account: Uuid, domain: Uuid, params: ListParams) -> Result<List<SipUser>>;
    async fn update_sip_user(&self, account: Uuid, user: Uuid, patch: SipUserPatch) -> Result<SipUser>;
    async fn delete_sip_user(&self, account: Uuid, user: Uuid) -> Result<()>;
    /// *Unscoped* (registrar, digest authentication): a live user by domain name and login.
    async fn sip_user_by_login(&self, domain_name: &str, login: &str) -> Result<Option<SipUser>>;
    /// *Unscoped* (REST authentication by `X-Auth-HA1B-Token`): the live, active user of a live
    /// domain whose HA1B (`md5(login@domain:realm:password)`, lower-case hex) is `ha1b`.
    async fn sip_user_by_ha1b(&self, ha1b: &str) -> Result<Option<SipUser>>;
    /// The live, active SIP user of a live domain of `account` whose number is `lease` (the
    /// oldest, should several share it), with its domain's name: where the number's SMS go.
    async fn sip_user_of_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<(String, SipUser)>>;
}

/// Bulk calls (`POST /rest/batch`): the API stores a batch and its numbers; the server's
/// runner places the calls and records what became of each number.
#[async_trait]
pub trait BatchRepo: Send + Sync {
    /// Stores a batch and its items (positions `0..n` in `phones` order, all queued) in one
    /// transaction; the batch is queued. `Invalid` unless exactly one of `xml` and
    /// `sip_control_app` is given and there is at least one phone; `NotFound` (of that kind)
    /// for a lease, profile or app that is not a live object of the account.
    async fn create_batch(&self, account: Uuid, batch: NewBatch) -> Result<Batch>;
    /// The batch with its counts; another account's reads as `None`.
    async fn get_batch(&self, account: Uuid, id: Uuid) -> Result<Option<Batch>>;
    /// Oldest first; `take` is capped to [`MAX_TAKE`], negative values count as 0.
    async fn list_batches(&self, account: Uuid, take: i64, skip: i64) -> Result<List<Batch>>;
    /// *Unscoped* (the runner; the API checks the batch is the account's first): the items of a
    /// batch by position (none for an unknown batch).
    async fn batch_items(&self, batch: Uuid) -> Result<Vec<BatchItem>>;
    /// *Unscoped* (the runner): sets the item's state and the fields of `update` that are
    /// `Some`. `NotFound` if the batch has no item at `position`.
    async fn update_batch_item(&self, batch: Uuid, position: i32, update: BatchItemUpdate) -> Result<()>;
    /// *Unscoped* (the runner): sets the batch's state. A batch that is completed or cancelled
    /// keeps its state (`Ok`, nothing changes), so a runner that finishes after a cancel does
    /// not overwrite it. `NotFound` for an unknown batch.
    async fn set_batch_state(&self, batch: Uuid, state: BatchState) -> Result<()>;
    /// Cancels a queued or running batch (the runner places no new call; calls in progress
    /// finish) and returns it; a cancelled batch is returned as it is. `WrongState` for a
    /// completed batch.
    async fn cancel_batch(&self, account: Uuid, id: Uuid) -> Result<Batch>;
    /// *Unscoped* (the runner's start-up): the queued and running batches of every account,
    /// oldest first.
    async fn unfinished_batches(&self) -> Result<Vec<Batch>>;
}

/// How long a delivery receipt that arrived before its message's attempt was recorded is kept,
/// waiting for that attempt, ms.
pub const EARLY_RECEIPT_TTL_MS: i64 = 10 * 60 * 1000;

/// One write of the sender's and the carrier's group commit ([`MessageRepo::write_sms_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsWrite {
    /// [`MessageRepo::record_sms_attempt`].
    Attempt { id: Uuid, accepted: std::collections::BTreeMap<usize, String>, attempt: SmsAttempt },
    /// [`MessageRepo::record_sms_receipt_echoed`]; `echo` = (reference, handset).
    Receipt { receipt: SmsReceipt, echo: Option<(u16, String)> },
}

/// A message one write moved, as it is now, and how many of the last steps of its history that
/// write made: 2 when a receipt that overtook its attempt's record moves a message queued →
/// sent → delivered in one write (each step is reported, `sms.sent` before `sms.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMoved {
    pub message: SmsMessage,
    pub steps: usize,
}

impl SmsMoved {
    /// The message as each step this write made left it, in order: its state and history cut
    /// at that step.
    pub fn each_step(&self) -> Vec<SmsMessage> {
        let len = self.message.history.len();
        (len.saturating_sub(self.steps.max(1))..len)
            .map(|i| {
                let mut m = self.message.clone();
                m.history.truncate(i + 1);
                m.state = m.history[i].state;
                m
            })
            .collect()
    }
}

/// SMS messages and the durable outbound queue the sender claims from.
#[async_trait]
pub trait MessageRepo: Send + Sync {
    /// Stores a new message of `account` (the row exists before the API answers).
    async fn create_sms(&self, account: Uuid, new: NewSms) -> Result<SmsMessage> {
        let mut answers = self.create_sms_batch(vec![(account, new)]).await?;
        answers.pop().unwrap_or_else(|| Err(crate::StoreError::Invalid { field: "sms", reason: "no answer" }))
    }
    /// Stores new messages, in one transaction (the API's group commit); one answer per
    /// message, in order. A message refused (its lease no longer live: `NotFound`) is left out
    /// alone; the batch fails whole only when the store does.
    async fn create_sms_batch(&self, items: Vec<(Uuid, NewSms)>) -> Result<Vec<Result<SmsMessage>>>;
    /// Applies attempts and receipts, each at its time, in one transaction (the sender's group
    /// commit); one answer per write, in order: the message when it moved. An attempt of an
    /// unknown message answers `NotFound` alone; the batch fails whole only when the store does.
    async fn write_sms_batch(
        &self,
        writes: &[(SmsWrite, Timestamp)],
    ) -> Result<Vec<Result<Option<SmsMoved>>>>;
    async fn get_sms(&self, account: Uuid, id: Uuid) -> Result<Option<SmsMessage>>;
    async fn search_sms(
        &self,
        account: Uuid,
        filter: SmsFilter,
        params: ListParams,
    ) -> Result<List<SmsMessage>>;
    /// *Unscoped* (the sender): [`MessageRepo::claim_sms_with`] without a reconciliation grace.
    async fn claim_sms(&self, limit: usize, lease_ms: i64, expired: ExpiredClaim) -> Result<Vec<ClaimedSms>> {
        self.claim_sms_with(limit, lease_ms, expired, 0).await
    }
    /// *Unscoped* (the sender): claims up to `limit` queued messages for `lease_ms`, oldest
    /// first, and puts their parts not yet accepted in doubt, each under a fresh
    /// `user_message_reference`, in the same transaction (so before any submit).
    ///
    /// `grace_ms` is the reconciliation grace: a message whose claim ran out (its sender died)
    /// while parts were in doubt, or whose attempt left parts in doubt (their submits' answers
    /// were lost), is not handed out again before `grace_ms` has passed since — time for a
    /// delivery receipt echoing a part's reference to show the SMSC took it
    /// ([`MessageRepo::record_sms_receipt`]). Then `expired` decides what the parts still in
    /// doubt become: submitted again (under new references) or the message failed.
    async fn claim_sms_with(
        &self,
        limit: usize,
        lease_ms: i64,
        expired: ExpiredClaim,
        grace_ms: i64,
    ) -> Result<Vec<ClaimedSms>>;
    /// *Unscoped* (the sender's heartbeat): extends the claims `tokens` still hold to
    /// `lease_ms` from now; returns the messages renewed. A claim another sender took over
    /// (it ran out first) is not renewed.
    async fn renew_sms_claims(&self, tokens: &[Uuid], lease_ms: i64) -> Result<u64>;
    /// *Unscoped* (the sender): the outcome of a submit attempt.
    async fn record_sms_attempt(
        &self,
        id: Uuid,
        accepted: &std::collections::BTreeMap<usize, String>,
        attempt: &SmsAttempt,
        at: Timestamp,
    ) -> Result<Option<SmsMessage>> {
        let write = SmsWrite::Attempt { id, accepted: accepted.clone(), attempt: attempt.clone() };
        one_write(self.write_sms_batch(&[(write, at)]).await?)
    }
    /// *Unscoped* (the carrier): a delivery receipt, matched by the carrier's id.
    async fn record_sms_receipt(&self, receipt: &SmsReceipt, at: Timestamp) -> Result<Option<SmsMessage>> {
        self.record_sms_receipt_echoed(receipt, None, at).await
    }
    /// *Unscoped* (the carrier): a delivery receipt, matched by the carrier's id; or, when no
    /// part has that id and the SMSC echoed a `user_message_reference`, `echo` = (that
    /// reference, the receipt's handset): the part in doubt with that reference, sent to that
    /// handset, is settled as taken by the SMSC (with the receipt's carrier id), and its message
    /// moves to sent once every part is taken and no sender holds it.
    async fn record_sms_receipt_echoed(
        &self,
        receipt: &SmsReceipt,
        echo: Option<(u16, &str)>,
        at: Timestamp,
    ) -> Result<Option<SmsMessage>> {
        let write =
            SmsWrite::Receipt { receipt: receipt.clone(), echo: echo.map(|(r, h)| (r, h.to_owned())) };
        one_write(self.write_sms_batch(&[(write, at)]).await?)
    }
    /// *Unscoped* (inbound routing): an inbound message's outcome, received → `to` (delivered:
    /// the number's app took it; failed: it could not), with the reason kept in its history.
    /// `None` when it was not an inbound message in state received (already settled: nothing
    /// changes); `Invalid` for any other `to`.
    async fn settle_inbound_sms(
        &self,
        id: Uuid,
        to: SmsState,
        reason: Option<String>,
        at: Timestamp,
    ) -> Result<Option<SmsMessage>>;
}

/// The one answer of a batch of one write.
fn one_write(mut answers: Vec<Result<Option<SmsMoved>>>) -> Result<Option<SmsMessage>> {
    answers
        .pop()
        .unwrap_or_else(|| Err(crate::StoreError::Invalid { field: "sms", reason: "no answer" }))
        .map(|moved| moved.map(|m| m.message))
}

/// Filter for [`TenDlcRepo::list_campaigns`]; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub brand: Option<Uuid>,
    pub state: Option<CampaignState>,
}

/// 10DLC brands and campaigns, and the numbers assigned to campaigns.
#[async_trait]
pub trait TenDlcRepo: Send + Sync {
    async fn create_brand(&self, account: Uuid, new: NewTenDlcBrand) -> Result<TenDlcBrand>;
    async fn get_brand(&self, account: Uuid, brand: Uuid) -> Result<Option<TenDlcBrand>>;
    async fn list_brands(&self, account: Uuid, params: ListParams) -> Result<List<TenDlcBrand>>;
    /// A pending campaign of one of the account's brands (`NotFound` of kind brand otherwise).
    async fn create_campaign(&self, account: Uuid, new: NewTenDlcCampaign) -> Result<TenDlcCampaign>;
    async fn get_campaign(&self, account: Uuid, campaign: Uuid) -> Result<Option<TenDlcCampaign>>;
    async fn list_campaigns(
        &self,
        account: Uuid,
        filter: CampaignFilter,
        params: ListParams,
    ) -> Result<List<TenDlcCampaign>>;
    /// Assigns the leases `add` to the campaign and takes `remove` out of it, in one
    /// transaction. `NotFound` (kind tn lease) for a lease that is not an active lease of the
    /// account; `Conflict` for one already in a campaign (this one included); `NotFound` (kind
    /// tn lease) for a lease in `remove` that is not in this campaign.
    async fn assign_campaign_numbers(
        &self,
        account: Uuid,
        campaign: Uuid,
        add: &[Uuid],
        remove: &[Uuid],
    ) -> Result<TenDlcCampaign>;
    /// The campaign the lease is assigned to, if any.
    async fn campaign_of_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<TenDlcCampaign>>;
    /// *Unscoped* (the operator's review): campaigns of every account, oldest first.
    async fn all_campaigns(
        &self,
        state: Option<CampaignState>,
        params: ListParams,
    ) -> Result<List<TenDlcCampaign>>;
    /// *Unscoped* (the operator): approves or rejects a campaign, whatever its state was.
    async fn decide_campaign(&self, campaign: Uuid, decision: CampaignDecision) -> Result<TenDlcCampaign>;
}

/// Nodes sharing one database: each renews its heartbeat; a survivor takes a dead one's work
/// over. A node is dead when its heartbeat is older than the timeout (clocks of the nodes must
/// agree well within it).
#[async_trait]
pub trait NodeRepo: Send + Sync {
    /// The node starts (again): its heartbeat is `at`, a take-over of it is forgotten, and the
    /// pending webhook deliveries no node claims (written before nodes were named) become its.
    async fn register_node(&self, node: &str, at: Timestamp) -> Result<()>;
    /// Renews the node's heartbeat; `false` when it was taken over meanwhile (declared dead:
    /// its work is another node's now) or never registered.
    async fn renew_node(&self, node: &str, at: Timestamp) -> Result<bool>;
    /// If a node other than `survivor` was last seen before `dead_before` and nobody took it
    /// over yet, `survivor` takes it over, in one transaction: its batch items in progress
    /// failed and its open CDRs closed (Q.850 41, `reason` with `{node}` replaced by the dead
    /// node's name), its pending webhook deliveries
    /// claimed by `survivor`, its limit leases given back ([`LimitRepo`]). One dead node per call (`None`: none left); of several
    /// survivors trying at once exactly one gets each dead node.
    async fn take_over_dead_node(
        &self,
        survivor: &str,
        dead_before: Timestamp,
        at: Timestamp,
        reason: &str,
    ) -> Result<Option<NodeTakeover>>;
}

/// Commands for calls carried by another node of the same database (see the migration
/// `0021_call_command.sql`). On PostgreSQL writing a command notifies the carrying node and
/// answering it notifies the sender ([`crate::Store::listen`]); on SQLite, where nodes do not
/// share a database, only the rows exist.
#[async_trait]
pub trait CommandRelayRepo: Send + Sync {
    /// Writes `command` for its node, and notifies the node.
    async fn relay_command(&self, command: &RelayedCommand) -> Result<()>;
    /// Claims up to `limit` of `node`'s pending commands (marks them running), oldest first.
    async fn claim_relayed_commands(&self, node: &str, limit: u32) -> Result<Vec<RelayedCommand>>;
    /// Records the outcome of a command `node` ran, and notifies its sender.
    async fn answer_relayed_command(&self, id: Uuid, outcome: &RelayedOutcome, at: Timestamp) -> Result<()>;
    /// A command's outcome; `None` while pending or running.
    async fn relayed_command_outcome(&self, id: Uuid) -> Result<Option<RelayedOutcome>>;
    /// Expires a command nobody claimed yet (its sender stops waiting); `false` when it was
    /// claimed meanwhile (it runs, and its outcome comes).
    async fn expire_relayed_command(&self, id: Uuid, at: Timestamp) -> Result<bool>;
    /// Deletes commands written before `before`; the number deleted.
    async fn purge_relayed_commands(&self, before: Timestamp) -> Result<u64>;
}

/// Events sent to the other nodes of a shared PostgreSQL, for their websocket clients: each
/// is a NOTIFY on [`crate::EVENT_CHANNEL`] (payload: the sending node's id, a newline, the
/// event's JSON — or `@` and the id of the row that holds an event too large for a
/// notification). On SQLite, where nodes do not share a database, nothing is sent.
#[async_trait]
pub trait EventRelayRepo: Send + Sync {
    /// Sends `events` (each its id and JSON) from `node`, in this order, in one round trip.
    async fn relay_events(&self, node: &str, events: &[(Uuid, String)]) -> Result<()>;
    /// The JSON of a relayed event kept as a row (one too large to be sent inline).
    async fn relayed_event(&self, id: Uuid) -> Result<Option<String>>;
    /// Deletes kept events written before `before`; the number deleted.
    async fn purge_relayed_events(&self, before: Timestamp) -> Result<u64>;
}

/// Limits counted by all the nodes of a shared database together: leases (a channel of an
/// outbound voice profile in use) and rate slots (when the next call may start). A scope is
/// the limit's name, e.g. `profile:<uuid>`. A node's leases go when it starts again
/// ([`Self::release_node_leases`]) or is taken over ([`NodeRepo::take_over_dead_node`]).
#[async_trait]
pub trait LimitRepo: Send + Sync {
    /// Takes lease `id` in `scope` for `node` if fewer than `limit` are held; `false` when
    /// `limit` are. Exact with many nodes taking at once.
    async fn take_lease(&self, scope: &str, limit: u32, node: &str, id: Uuid, at: Timestamp) -> Result<bool>;
    /// Gives lease `id` back.
    async fn give_back_lease(&self, id: Uuid) -> Result<()>;
    /// Leases held in `scope`.
    async fn leases_held(&self, scope: &str) -> Result<u64>;
    /// Gives back every lease of `node` (it starts again: its calls are gone); how many.
    async fn release_node_leases(&self, node: &str) -> Result<u64>;
    /// Reserves the next start slot of `scope`, which starts a call every `interval_us`: the
    /// unix time (µs) at which this call may start, at `now_us` or later — or `None`, nothing
    /// reserved, when that is more than `max_wait_us` away.
    async fn reserve_rate_slot(
        &self,
        scope: &str,
        interval_us: i64,
        now_us: i64,
        max_wait_us: Option<i64>,
    ) -> Result<Option<i64>>;
}

/// Money: each account's balance and its ledger.
#[async_trait]
pub trait BillingRepo: Send + Sync {
    /// The account's balance, micro-units. `NotFound` for no such account.
    async fn balance(&self, account: Uuid) -> Result<i64>;
    /// *Operator*: adds `amount_micros` (positive; a correction may be negative) to the
    /// balance, with the operator's note.
    async fn credit(&self, account: Uuid, amount_micros: i64, description: &str) -> Result<Transaction>;
    /// Up to `limit` credits not yet announced, oldest first, each given to one caller once
    /// (whichever node asks first): the running platform publishes them as `account.changed`,
    /// since the operator's CLI credits from outside it.
    async fn take_credits_to_announce(&self, limit: u32) -> Result<Vec<Transaction>>;
    /// Takes a charge off the balance, writes it to the ledger and prices its call or message,
    /// in one transaction. A charge of a call or message already charged changes nothing and
    /// returns the first (a retried settlement). `NotFound` for a call or message the account
    /// does not have.
    async fn charge(&self, account: Uuid, charge: NewCharge) -> Result<Transaction>;
    /// What the account's calls under `profile` were charged since `since` (micro-units, not
    /// negative): the day's spend a daily spend limit counts.
    async fn spent_since(&self, account: Uuid, profile: Uuid, since: Timestamp) -> Result<i64>;
    /// Charges a month of a leased number when the balance pays it (a number is not rented
    /// on credit), and moves its `paid_until`, in one transaction: see [`LeaseChargeOutcome`].
    async fn charge_lease(&self, account: Uuid, charge: NewLeaseCharge) -> Result<LeaseChargeOutcome>;
    async fn search_transactions(
        &self,
        account: Uuid,
        filter: TransactionFilter,
        params: ListParams,
    ) -> Result<List<Transaction>>;
}

/// The operator's NPA-NXX data (the server's own: not part of [`Repository`]).
#[async_trait]
pub trait TelecomRepo: Send + Sync {
    /// Puts `rows` in place of every row, in one transaction (readers see the old data or the
    /// new, never a mix), and records the import.
    async fn replace_exchanges(
        &self,
        rows: &[ExchangeRow],
        digest: &str,
        source: &str,
    ) -> Result<TelecomImport>;

    /// The last import; `None` before the first.
    async fn telecom_import(&self) -> Result<Option<TelecomImport>>;

    /// Every row.
    async fn exchanges(&self) -> Result<Vec<ExchangeRow>>;
}

/// Everything the store offers, as one object-safe trait (`Arc<dyn Repository>`).
pub trait Repository:
    AccountRepo
    + TokenRepo
    + NumberRepo
    + LeaseRepo
    + TnProfileRepo
    + OutboundVoiceProfileRepo
    + SipConnectionRepo
    + SipControlAppRepo
    + SipDomainRepo
    + OrderRepo
    + MessagingProfileRepo
    + SipInviteRepo
    + VerifiedNumberRepo
    + CallLogRepo
    + WebhookRepo
    + NodeRepo
    + BatchRepo
    + MessageRepo
    + TenDlcRepo
    + BillingRepo
{
}

impl<T> Repository for T where
    T: AccountRepo
        + TokenRepo
        + NumberRepo
        + LeaseRepo
        + TnProfileRepo
        + OutboundVoiceProfileRepo
        + SipConnectionRepo
        + SipControlAppRepo
        + SipDomainRepo
        + OrderRepo
        + MessagingProfileRepo
        + SipInviteRepo
        + VerifiedNumberRepo
        + CallLogRepo
        + WebhookRepo
        + NodeRepo
        + BatchRepo
        + MessageRepo
        + TenDlcRepo
        + BillingRepo
{
}
