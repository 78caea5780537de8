//! Why a document was refused: the bound it broke and the message a
//! client reads.

/// The bound a document broke; its wire name is `extensions.limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_size`](super::Limits::max_size).
    Size,
    /// [`Limits::max_aliases`](super::Limits::max_aliases).
    Aliases,
    /// [`Limits::max_audit_logs`](super::Limits::max_audit_logs).
    AuditLog,
    /// [`Limits::max_introspection`](super::Limits::max_introspection).
    Introspection,
    /// [`Limits::max_depth`](super::Limits::max_depth).
    Depth,
    /// [`Limits::max_field_depth`](super::Limits::max_field_depth).
    FieldDepth,
    /// [`Limits::max_introspection_depth`](super::Limits::max_introspection_depth).
    IntrospectionDepth,
    /// [`Limits::max_introspection_size`](super::Limits::max_introspection_size).
    IntrospectionSize,
    /// [`Limits::max_complexity`](super::Limits::max_complexity).
    Complexity,
    /// [`Limits::max_definitions`](super::Limits::max_definitions).
    Definitions,
    /// [`Limits::max_variables`](super::Limits::max_variables).
    Variables,
    /// [`Limits::max_arguments`](super::Limits::max_arguments).
    Arguments,
    /// [`Limits::max_directives`](super::Limits::max_directives).
    Directives,
    /// A fragment spreads itself, directly or through others.
    FragmentCycle,
    /// A spread names a fragment the document does not define.
    UnknownFragment,
}

impl Limit {
    /// The wire name, sent as `extensions.limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "SIZE",
            Self::Aliases => "ALIASES",
            Self::AuditLog => "AUDIT_LOG_FIELDS",
            Self::Introspection => "INTROSPECTION_FIELDS",
            Self::Depth => "NESTING",
            Self::FieldDepth => "DEPTH",
            Self::IntrospectionDepth => "INTROSPECTION_DEPTH",
            Self::IntrospectionSize => "INTROSPECTION_SIZE",
            Self::Complexity => "COMPLEXITY",
            Self::Definitions => "DEFINITIONS",
            Self::Variables => "VARIABLES",
            Self::Arguments => "ARGUMENTS",
            Self::Directives => "DIRECTIVES",
            Self::FragmentCycle => "FRAGMENT_CYCLE",
            Self::UnknownFragment => "UNKNOWN_FRAGMENT",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Size => "nodes once its fragments are expanded",
            Self::Aliases => "aliases in one operation once its fragments are expanded",
            Self::AuditLog => "auditLog fields in one operation once its fragments are expanded",
            Self::Introspection => {
                "__schema and __type fields in one operation once its fragments are expanded"
            }
            Self::Depth => "levels of nesting once its fragments are expanded",
            Self::FieldDepth => "levels of fields outside introspection",
            Self::IntrospectionDepth => "levels of fields under __schema or __type",
            Self::IntrospectionSize => {
                "fields under __schema and __type once its fragments are expanded"
            }
            Self::Complexity => "complexity outside introspection",
            Self::Definitions => "operations and fragments",
            Self::Variables => "variable definitions",
            Self::Arguments => "arguments",
            Self::Directives => "directives",
            Self::FragmentCycle | Self::UnknownFragment => "",
        }
    }
}

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The bound it broke.
    pub limit: Limit,
    /// What was found (saturated; for depth, where the walk stopped).
    pub found: usize,
    /// The bound.
    pub max: usize,
    /// The fragment at fault, for a cycle or an unknown fragment.
    pub fragment: Option<String>,
    /// `found` is a lower bound: the text was refused before parsing.
    pub at_least: bool,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fragment = self.fragment.as_deref().unwrap_or_default();
        match self.limit {
            Limit::FragmentCycle => write!(f, "the fragment `{fragment}` spreads itself"),
            Limit::UnknownFragment => write!(f, "the fragment `{fragment}` is not defined"),
            Limit::Introspection if self.max == 0 => f.write_str(
                "introspection is turned off on this server (WARDEN_INTROSPECTION=false): \
                 __schema and __type are refused; __typename still works",
            ),
            Limit::Depth => write!(
                f,
                "the document's selections are nested more than {} levels deep once its fragments are expanded",
                self.max
            ),
            Limit::FieldDepth => write!(
                f,
                "the document's fields are nested more than {} levels deep",
                self.max
            ),
            Limit::IntrospectionDepth => write!(
                f,
                "the fields under __schema or __type are nested more than {} levels deep \
                 (the standard introspection query fits)",
                self.max
            ),
            limit => write!(
                f,
                "the document has {}{} {}; at most {} are allowed",
                if self.at_least { "at least " } else { "" },
                self.found,
                limit.what(),
                self.max
            ),
        }
    }
}

impl Refusal {
    pub(super) fn new(limit: Limit, found: usize, max: usize) -> Self {
        Self {
            limit,
            found,
            max,
            fragment: None,
            at_least: false,
        }
    }

    pub(super) fn fragment(limit: Limit, name: &str) -> Self {
        Self {
            limit,
            found: 0,
            max: 0,
            fragment: Some(name.to_owned()),
            at_least: false,
        }
    }
}
