//! # aduana guest SDK
//!
//! Write an aduana fraud rule as plain Rust and compile it to a WebAssembly
//! component that the aduana host runs in its sandbox.
//!
//! A rule is a pure function: it sees the [`Transaction`], its typed params
//! and a read-only [`Context`] (list membership, beneficiary history, pay-in
//! velocity) that the
//! host prefetched before the call. It has no clock, no randomness, no files
//! and no network; the transaction carries `assessed_at_ms` for time-based
//! logic.
//!
//! ```ignore
//! use aduana_guest_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! #[serde(default)]
//! struct Params { weight: u32 }
//! impl Default for Params { fn default() -> Self { Self { weight: 20 } } }
//!
//! struct BigAmount;
//! impl Rule for BigAmount {
//!     type Params = Params;
//!     fn describe() -> Description { Description::new("big-amount", "flags large payouts")
//!         .flow(Flow::Payout).signal("big_amount", 20, "amount is large") }
//!     fn evaluate(tx: &Transaction, p: &Params, _ctx: &dyn Context) -> Result<Evaluation, RuleError> {
//!         let mut out = Evaluation::new();
//!         if tx.amount.minor > 1_000_000 { out.fire("big_amount", p.weight, "amount is large"); }
//!         Ok(out)
//!     }
//! }
//! export_rule!(BigAmount);
//! ```
//!
//! Build with `cargo build --target wasm32-unknown-unknown` and turn the core
//! module into a component (the host's build does this for the built-in
//! rules). The WIT world lives in the repository's `wit/` folder.
//!
//! What this crate is not: it does not run rules (the host does), and the
//! `wit-bindgen` generated code stays private to it.
#![deny(missing_docs)]

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod alloc;
pub mod ident;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, unsafe_code, clippy::all)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "rule",
        pub_export_macro: true,
        export_macro_name: "__export_rule",
        default_bindings_module: "aduana_guest_sdk::bindings",
    });
}

pub use bindings::aduana::rules::types::{
    Amount, Beneficiary, Billing, Channel, Device, Evaluation, FieldWarning, Flow, History,
    ListHit, ListMatch, Metadata, Origin, PayinDetails, PaymentMethod, PayoutDetails, RuleError,
    Severity, Signal, SignalSpec, Transaction, VelocityCount,
};

/// The WIT `context` record: what the host prefetched for one transaction
/// and passes to `evaluate`. Rules read it through the [`Context`] trait.
pub use bindings::aduana::rules::types::Context as Prefetched;

/// Everything a rule author usually needs, in one import.
pub mod prelude {
    pub use crate::{
        Amount, Beneficiary, Billing, Channel, Context, Description, Device, Evaluation,
        FieldWarning, Flow, History, ListHit, NoParams, Origin, PayinDetails, PaymentMethod,
        PayoutDetails, Rule, RuleError, Severity, Signal, Transaction, export_rule,
    };
}

/// Params of a rule without tunables (serializes as `{}`).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct NoParams {}

/// A fraud rule. Implement it on a unit struct and call [`export_rule!`].
pub trait Rule {
    /// Tunables: deserialized from the JSON object the host passes (the
    /// rule's defaults merged with the tenant's overrides). Use
    /// `#[serde(default)]` so a partial object works.
    type Params: serde::de::DeserializeOwned + serde::Serialize + Default;

    /// Static identity: id, description, flows and the signals it may emit.
    fn describe() -> Description;

    /// Judge one transaction. A fired signal is a result, not an error;
    /// return `Err` only when the rule cannot judge at all.
    fn evaluate(
        tx: &Transaction,
        params: &Self::Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError>;
}

/// Read-only questions a rule may ask about the transaction's surroundings.
///
/// Inside the component this is answered from the [`Prefetched`] record the
/// host passes to `evaluate`; native tests and benchmarks can supply their
/// own.
pub trait Context {
    /// Is `value` on the tenant's `list_type` list (`clabe`, `iban`,
    /// `account_hash`, `swift_bic`, `beneficiary_id`, ...) for this flow?
    fn list_lookup(&self, list_type: &str, value: &str) -> Option<ListHit>;
    /// Earlier transfers between this origin and this beneficiary.
    fn beneficiary_history(&self) -> History;
    /// Pay-in velocity: how many of the tenant's earlier live pay-ins
    /// shared this transaction's `entity` (`customer`, `card`, `ip`,
    /// `device`, `email`) within `window` (`1h`, `24h`, `7d`), as of the
    /// assessment's time. `None` when the transaction has no such entity
    /// (or is a payout).
    fn velocity(&self, entity: &str, window: &str) -> Option<u32> {
        let _ = (entity, window);
        None
    }
}

/// The [`Context`] inside a component: answers from the [`Prefetched`]
/// record the host passed with the transaction. A lookup normalizes `value`
/// with [`ident::normalize_list_value`], the function the host normalizes
/// list entries with, and only the transaction's own identifiers were
/// prefetched: any other value answers `None`.
#[derive(Debug, Clone, Copy)]
pub struct HostContext<'a>(pub &'a Prefetched);

impl Context for HostContext<'_> {
    fn list_lookup(&self, list_type: &str, value: &str) -> Option<ListHit> {
        // Most transactions match no list: nothing to normalize then.
        let hits = self.0.list_hits.as_deref()?;
        let value = ident::normalize_list_value(list_type, value)?;
        hits.iter()
            .find(|m| m.list_type == list_type && m.value == value)
            .map(|m| m.hit.clone())
    }
    fn beneficiary_history(&self) -> History {
        self.0.history
    }
    fn velocity(&self, entity: &str, window: &str) -> Option<u32> {
        self.0
            .velocity
            .as_deref()?
            .iter()
            .find(|v| v.entity == entity && v.window == window)
            .map(|v| v.count)
    }
}

/// Builder for a rule's [`Metadata`].
#[derive(Debug, Clone)]
pub struct Description {
    id: String,
    description: String,
    flows: Vec<Flow>,
    signals: Vec<SignalSpec>,
}

impl Description {
    /// A rule called `id` (kebab-case, never changes) doing `description`.
    pub fn new(id: &str, description: &str) -> Self {
        Self {
            id: id.to_owned(),
            description: description.to_owned(),
            flows: Vec::new(),
            signals: Vec::new(),
        }
    }
    /// The rule applies to `flow`.
    pub fn flow(mut self, flow: Flow) -> Self {
        self.flows.push(flow);
        self
    }
    /// The rule may emit `code` with `default_weight`.
    pub fn signal(mut self, code: &str, default_weight: u32, description: &str) -> Self {
        self.signals.push(SignalSpec {
            code: code.to_owned(),
            default_weight,
            description: description.to_owned(),
        });
        self
    }
}

impl Evaluation {
    /// An evaluation with no signals and no warnings.
    pub fn new() -> Self {
        Self {
            signals: Vec::new(),
            warnings: Vec::new(),
        }
    }
    /// Fire signal `code` with `weight`.
    pub fn fire(&mut self, code: &str, weight: u32, description: &str) -> &mut Self {
        self.signals.push(Signal {
            code: code.to_owned(),
            weight,
            description: description.to_owned(),
            hard_block: None,
        });
        self
    }
    /// Fire signal `code` as a hard block: the decision becomes `decline`
    /// with `blocked_by` = `reason`.
    pub fn block(&mut self, code: &str, weight: u32, description: &str, reason: &str) -> &mut Self {
        self.signals.push(Signal {
            code: code.to_owned(),
            weight,
            description: description.to_owned(),
            hard_block: Some(reason.to_owned()),
        });
        self
    }
    /// Tell the integrator about a problem with `field` (a JSON path).
    pub fn warn(&mut self, field: &str, message: &str) -> &mut Self {
        self.warnings.push(FieldWarning {
            field: field.to_owned(),
            message: message.to_owned(),
        });
        self
    }
}

impl Default for Evaluation {
    fn default() -> Self {
        Self::new()
    }
}

impl Amount {
    /// Converts a major-unit decimal string (`"200000.00"`) to minor units of
    /// this amount's currency. `None` if malformed, negative, has more
    /// decimals than the currency's exponent, or overflows.
    pub fn major_to_minor(&self, major: &str) -> Option<u64> {
        ident::major_to_minor(major, self.exponent)
    }
}

/// Runs a rule natively (no Wasm): for unit tests and benchmarks.
pub fn evaluate_native<R: Rule>(
    tx: &Transaction,
    params_json: &str,
    ctx: &dyn Context,
) -> Result<Evaluation, RuleError> {
    let params = parse_params::<R>(params_json)?;
    R::evaluate(tx, &params, ctx)
}

fn parse_params<R: Rule>(params_json: &str) -> Result<R::Params, RuleError> {
    if params_json.trim().is_empty() {
        return Ok(R::Params::default());
    }
    serde_json::from_str(params_json).map_err(|e| RuleError::InvalidParams(e.to_string()))
}

#[doc(hidden)]
pub mod __private {
    pub use crate::Prefetched;
    pub use crate::bindings::__export_rule;
    pub use crate::bindings::Guest;
    use crate::{Evaluation, HostContext, Metadata, Rule, RuleError, Transaction};

    pub fn metadata<R: Rule>(version: &str) -> Metadata {
        let d = R::describe();
        Metadata {
            id: d.id,
            version: version.to_owned(),
            description: d.description,
            flows: d.flows,
            signals: d.signals,
            default_params: serde_json::to_string(&R::Params::default())
                .unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    pub fn evaluate<R: Rule>(
        tx: Transaction,
        params: String,
        context: Prefetched,
    ) -> Result<Evaluation, RuleError> {
        crate::evaluate_native::<R>(&tx, &params, &HostContext(&context))
    }
}

/// Exports `$rule` (a type implementing [`Rule`]) as the component's `rule`
/// world. Call it once per crate. The rule's version is the crate version.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        // Only the Wasm build exports symbols, so several rules can be linked
        // natively into one test or benchmark binary.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __AduanaRuleExport;
            impl $crate::__private::Guest for __AduanaRuleExport {
                fn metadata() -> $crate::Metadata {
                    $crate::__private::metadata::<$rule>(env!("CARGO_PKG_VERSION"))
                }
                fn evaluate(
                    tx: $crate::Transaction,
                    params: ::std::string::String,
                    context: $crate::__private::Prefetched,
                ) -> ::core::result::Result<$crate::Evaluation, $crate::RuleError> {
                    $crate::__private::evaluate::<$rule>(tx, params, context)
                }
            }
    $crate::__private::__export_rule!(__AduanaRuleExport with_types_in $crate::bindings);
        };
    };
}
