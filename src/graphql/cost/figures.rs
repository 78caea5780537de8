//! The figures of a measure: the bounds ([`Limits`]), what a definition or
//! selection set adds up to ([`Tally`]) and the whole document's [`Cost`].

/// The bounds a document must stay within.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest expanded size of all definitions together.
    pub max_size: usize,
    /// Most aliases in one operation, expanded.
    pub max_aliases: usize,
    /// Most `auditLog` fields in one operation, expanded.
    pub max_audit_logs: usize,
    /// Most `__schema` and `__type` fields in one operation, expanded: each
    /// walks the schema, and repeating them (under aliases, or spread from
    /// fragments) multiplies a walk no size bound on the text can see.
    pub max_introspection: usize,
    /// Deepest nesting of selection sets, spreads and inline fragments
    /// included: bounds the walks of the document (this one's, the
    /// parser's, validation's), whatever the fields.
    pub max_depth: usize,
    /// Deepest chain of fields outside introspection (`__typename` not
    /// counted, as async-graphql counts depth).
    pub max_field_depth: usize,
    /// Deepest chain of fields through `__schema` or `__type`, counted
    /// from the operation's root: the standard introspection query's
    /// `ofType` chain fits, a deeper one does not.
    pub max_introspection_depth: usize,
    /// Most fields inside `__schema` and `__type`, the roots included and
    /// `__typename` not, expanded, all operations together. They are left
    /// out of the complexity below and bounded by this instead.
    pub max_introspection_size: usize,
    /// Most complexity outside introspection, as async-graphql counts it
    /// (one per field plus what a field declares, e.g. 40 for `login`);
    /// checked once validation has counted it (see `limits`).
    pub max_complexity: usize,
    /// Most operations and fragments in one document.
    pub max_definitions: usize,
    /// Most variable definitions, all operations together.
    pub max_variables: usize,
    /// Most arguments as written (fields and directives).
    pub max_arguments: usize,
    /// Most directives as written.
    pub max_directives: usize,
}

/// What one definition or selection set adds up to, expanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Nodes: selections, arguments, directives and the size of values.
    pub size: usize,
    /// Aliased fields.
    pub aliases: usize,
    /// Fields named `auditLog`.
    pub audit_logs: usize,
    /// Fields named `__schema` or `__type`.
    pub introspection: usize,
    /// Levels of selection sets below (a spread counts as one level).
    pub height: usize,
    /// Fields other than `__typename`, expanded.
    pub fields: usize,
    /// Longest chain of such fields.
    pub field_height: usize,
    /// Longest chain of such fields that enters no `__schema`/`__type`.
    pub ordinary_height: usize,
    /// Longest chain of such fields through a `__schema`/`__type` (0 if
    /// there is none).
    pub introspection_height: usize,
    /// Fields inside `__schema`/`__type` subtrees, the roots included.
    pub introspection_size: usize,
}

impl Tally {
    pub(super) fn add(&mut self, other: Tally) {
        self.size = self.size.saturating_add(other.size);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.audit_logs = self.audit_logs.saturating_add(other.audit_logs);
        self.introspection = self.introspection.saturating_add(other.introspection);
        self.height = self.height.max(other.height);
        self.fields = self.fields.saturating_add(other.fields);
        self.field_height = self.field_height.max(other.field_height);
        self.ordinary_height = self.ordinary_height.max(other.ordinary_height);
        self.introspection_height = self.introspection_height.max(other.introspection_height);
        self.introspection_size = self
            .introspection_size
            .saturating_add(other.introspection_size);
    }

    /// This tally, as the selections of `field` (its own counts aside).
    pub(super) fn under_field(mut self, field: &str) -> Self {
        if field == "__typename" {
            // No selections, and neither depth nor complexity counts it.
            return self;
        }
        self.fields = self.fields.saturating_add(1);
        self.field_height = self.field_height.saturating_add(1);
        if matches!(field, "__schema" | "__type") {
            self.introspection_size = self.fields;
            self.introspection_height = self.field_height;
            self.ordinary_height = 0;
        } else {
            self.ordinary_height = self.ordinary_height.saturating_add(1);
            if self.introspection_height > 0 {
                self.introspection_height = self.introspection_height.saturating_add(1);
            }
        }
        self
    }

    pub(super) fn grow(&mut self, size: usize) {
        self.size = self.size.saturating_add(size);
    }
}

/// The whole document's figures, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Expanded size of all definitions together.
    pub size: usize,
    /// Most aliases in one operation.
    pub aliases: usize,
    /// Most `auditLog` fields in one operation.
    pub audit_logs: usize,
    /// Most `__schema` and `__type` fields in one operation.
    pub introspection: usize,
    /// Deepest nesting.
    pub depth: usize,
    /// Longest chain of fields outside introspection, in any operation.
    pub field_depth: usize,
    /// Longest chain of fields through `__schema`/`__type`, in any operation.
    pub introspection_depth: usize,
    /// Fields inside `__schema`/`__type`, all operations together.
    pub introspection_size: usize,
}
