//! Schemas for server-side apply: upstream's OpenAPI definitions (or a CRD's
//! openAPIV3Schema) converted to the structured-merge-diff type model, i.e.
//! which maps are granular or atomic and which lists are atomic, sets or maps
//! keyed by fields. Follows kube-openapi's `schemaconv` rules: lists without
//! `x-kubernetes-list-type` are atomic unless their patch strategy is `merge`
//! (then associative, keyed by the patch merge key when there is one).

use crate::openapi;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub(crate) type TyId = u32;

/// `__untyped_atomic_`: any scalar, atomic lists, atomic maps.
pub(crate) const UNTYPED: TyId = 0;
/// `__untyped_deduced_`: any scalar, atomic lists, granular maps of deduced values.
pub(crate) const DEDUCED: TyId = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ScalarKind {
    Numeric,
    String,
    Boolean,
    Untyped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Atomic,
    /// Associative without keys: items are identified by value.
    Set,
    /// Associative with keys: items are identified by these fields.
    Map(Vec<String>),
}

#[derive(Clone, Debug)]
pub(crate) struct ListDef {
    pub elem: TyId,
    pub kind: ListKind,
}

#[derive(Clone, Debug)]
pub(crate) struct FieldDef {
    pub ty: TyId,
    pub default: Option<Value>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct MapDef {
    pub fields: HashMap<String, FieldDef>,
    /// Type of keys that are not declared fields; `None`: such keys are not allowed.
    pub elem: Option<TyId>,
    pub atomic: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Atom {
    pub scalar: Option<ScalarKind>,
    pub list: Option<ListDef>,
    pub map: Option<MapDef>,
}

/// A set of types: the built-in ones (shared, built once) plus, for schemas
/// given as JSON (CRDs), local types numbered after them.
#[derive(Debug, Default)]
pub(crate) struct Types {
    local: Vec<Atom>,
}

/// A handle on the schema of one kind: what apply, update tracking and
/// FieldsV1 computations walk.
#[derive(Clone, Debug)]
pub struct TypeRef {
    pub(crate) types: Arc<Types>,
    pub(crate) root: TyId,
    /// Built-in kinds are Go structs upstream: nulls vanish and top-level
    /// structs (`metadata`, `spec`, `status`) always exist.
    pub(crate) go_struct: bool,
}

struct Base {
    atoms: Vec<Atom>,
    named: HashMap<String, TyId>,
}

fn untyped_atom() -> Atom {
    Atom {
        scalar: Some(ScalarKind::Untyped),
        list: Some(ListDef { elem: UNTYPED, kind: ListKind::Atomic }),
        map: Some(MapDef { fields: HashMap::new(), elem: Some(UNTYPED), atomic: true }),
    }
}

fn deduced_atom() -> Atom {
    Atom {
        scalar: Some(ScalarKind::Untyped),
        list: Some(ListDef { elem: UNTYPED, kind: ListKind::Atomic }),
        map: Some(MapDef { fields: HashMap::new(), elem: Some(DEDUCED), atomic: false }),
    }
}

/// Defaults of list-map key fields that upstream's OpenAPI v3 carries but the
/// v2 definitions we embed do not (SMD fills missing keys from them).
fn known_key_default(def: &str, field: &str) -> Option<Value> {
    match (def, field) {
        ("io.k8s.api.core.v1.ContainerPort", "protocol") | ("io.k8s.api.core.v1.ServicePort", "protocol") => {
            Some(Value::String("TCP".into()))
        }
        ("io.k8s.api.core.v1.LocalObjectReference", "name") => Some(Value::String(String::new())),
        _ => None,
    }
}

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Converts JSON schemas into atoms, appending to `atoms` (ids offset by `offset`).
struct Converter<'a> {
    named: &'a HashMap<String, TyId>,
    atoms: Vec<Atom>,
    offset: TyId,
    /// (variant id, base id): a `$ref` whose property says `x-kubernetes-map-type`.
    variants: Vec<(TyId, TyId, bool)>,
}

impl Converter<'_> {
    fn push(&mut self, atom: Atom) -> TyId {
        self.atoms.push(atom);
        self.offset + (self.atoms.len() as TyId) - 1
    }

    fn map_type(s: &Value) -> Option<bool> {
        match s.get("x-kubernetes-map-type").and_then(Value::as_str) {
            Some("atomic") => Some(true),
            Some("granular") => Some(false),
            _ => None,
        }
    }

    /// A property / items / additionalProperties schema: a named ref or an inlined type.
    fn type_ref(&mut self, s: &Value, preserve: bool) -> TyId {
        let reference = s.get("$ref").and_then(Value::as_str).or_else(|| {
            match s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([one]) => one.get("$ref").and_then(Value::as_str),
                _ => None,
            }
        });
        if let Some(r) = reference {
            let name = r.rsplit('/').next().unwrap_or(r);
            let Some(&id) = self.named.get(name) else { return DEDUCED };
            return match Self::map_type(s) {
                Some(atomic) => {
                    let v = self.push(Atom::default());
                    self.variants.push((v, id, atomic));
                    v
                }
                None => id,
            };
        }
        let atom = self.atom(s, preserve, None);
        self.push(atom)
    }

    fn atom(&mut self, s: &Value, preserve: bool, def_name: Option<&str>) -> Atom {
        let preserve = preserve || s.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true);
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        match ty {
            "" => Atom {
                scalar: Some(ScalarKind::Untyped),
                list: Some(self.list(s, preserve)),
                map: Some(self.map(s, preserve, def_name)),
            },
            "object" => Atom { map: Some(self.map(s, preserve, def_name)), ..Atom::default() },
            "array" => Atom { list: Some(self.list(s, preserve)), ..Atom::default() },
            "integer" | "number" => Atom { scalar: Some(ScalarKind::Numeric), ..Atom::default() },
            "boolean" => Atom { scalar: Some(ScalarKind::Boolean), ..Atom::default() },
            "string" => {
                let kind = match s.get("format").and_then(Value::as_str).unwrap_or("") {
                    "" | "byte" => ScalarKind::String,
                    _ => ScalarKind::Untyped,
                };
                Atom { scalar: Some(kind), ..Atom::default() }
            }
            _ => Atom { scalar: Some(ScalarKind::Untyped), ..Atom::default() },
        }
    }

    fn map(&mut self, s: &Value, preserve: bool, def_name: Option<&str>) -> MapDef {
        let mut fields = HashMap::new();
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (name, p) in props {
                let ty = self.type_ref(p, preserve);
                let default = p.get("default").cloned().or_else(|| def_name.and_then(|d| known_key_default(d, name)));
                fields.insert(name.clone(), FieldDef { ty, default });
            }
        }
        if s.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true) {
            self.add_embedded_fields(&mut fields);
        }
        let no_props = props.is_none_or(|p| p.is_empty());
        let elem = match s.get("additionalProperties") {
            None | Some(Value::Null) => (preserve || no_props).then_some(DEDUCED),
            Some(Value::Bool(true)) => Some(DEDUCED),
            Some(Value::Bool(false)) => None,
            Some(other) => Some(self.type_ref(other, preserve)),
        };
        MapDef { fields, elem, atomic: Self::map_type(s) == Some(true) }
    }

    fn add_embedded_fields(&mut self, fields: &mut HashMap<String, FieldDef>) {
        for f in ["apiVersion", "kind"] {
            if !fields.contains_key(f) {
                let ty = self.push(Atom { scalar: Some(ScalarKind::String), ..Atom::default() });
                fields.insert(f.into(), FieldDef { ty, default: None });
            }
        }
        if let Some(&meta) = self.named.get(OBJECT_META) {
            fields.entry("metadata".into()).or_insert(FieldDef { ty: meta, default: None });
        }
    }

    fn list(&mut self, s: &Value, preserve: bool) -> ListDef {
        let elem = match s.get("items") {
            Some(items @ Value::Object(_)) => self.type_ref(items, preserve),
            Some(Value::Array(a)) if a.len() == 1 => self.type_ref(&a[0], preserve),
            _ => UNTYPED,
        };
        ListDef { elem, kind: list_kind(s) }
    }
}

fn list_kind(s: &Value) -> ListKind {
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListKind::Set,
        Some("map") => {
            let keys = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect::<Vec<_>>())
                .unwrap_or_default();
            if keys.is_empty() { ListKind::Set } else { ListKind::Map(keys) }
        }
        Some(_) => ListKind::Atomic,
        None => match s.get("x-kubernetes-patch-strategy").and_then(Value::as_str) {
            Some("merge") | Some("merge,retainKeys") => {
                match s.get("x-kubernetes-patch-merge-key").and_then(Value::as_str) {
                    Some(k) => ListKind::Map(vec![k.to_string()]),
                    None => ListKind::Set,
                }
            }
            _ => ListKind::Atomic,
        },
    }
}

fn resolve_variants(atoms: &mut [Atom], offset: TyId, base: &[Atom], variants: &[(TyId, TyId, bool)]) {
    for &(v, b, atomic) in variants {
        let src =
            if (b as usize) < base.len() { base[b as usize].clone() } else { atoms[(b - offset) as usize].clone() };
        let mut atom = src;
        if let Some(m) = atom.map.as_mut() {
            m.atomic = atomic;
        }
        atoms[(v - offset) as usize] = atom;
    }
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let defs: &Map<String, Value> = openapi::definitions();
        let mut named = HashMap::new();
        for (i, name) in defs.keys().enumerate() {
            named.insert(name.clone(), (i + 2) as TyId);
        }
        let mut conv =
            Converter { named: &named, atoms: vec![untyped_atom(), deduced_atom()], offset: 0, variants: vec![] };
        // Reserve the named slots first so inlined types are numbered after them.
        conv.atoms.extend(std::iter::repeat_with(Atom::default).take(defs.len()));
        for (name, s) in defs {
            let id = named[name.as_str()] as usize;
            let atom = match name.as_str() {
                QUANTITY => Atom { scalar: Some(ScalarKind::Untyped), ..Atom::default() },
                RAW_EXTENSION => untyped_atom(),
                _ => conv.atom(s, false, Some(name)),
            };
            conv.atoms[id] = atom;
        }
        let variants = std::mem::take(&mut conv.variants);
        let mut atoms = conv.atoms;
        resolve_variants(&mut atoms, 0, &[], &variants);
        Base { atoms, named }
    })
}

impl Types {
    pub(crate) fn get(&self, id: TyId) -> &Atom {
        let base = &base().atoms;
        let i = id as usize;
        if i < base.len() { &base[i] } else { self.local.get(i - base.len()).unwrap_or(&base[DEDUCED as usize]) }
    }
}

fn shared_types() -> Arc<Types> {
    static EMPTY: OnceLock<Arc<Types>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(Types::default())).clone()
}

/// The schema of a built-in kind, or the deduced schema (granular maps,
/// atomic lists) when the kind has no built-in definition.
pub fn schema_for(group: &str, version: &str, kind: &str) -> TypeRef {
    match openapi::definition_name(group, version, kind).and_then(|n| base().named.get(n)) {
        Some(&root) => TypeRef { types: shared_types(), root, go_struct: true },
        None => deduced(),
    }
}

/// The schema of a definition by name (`io.k8s.api.apps.v1.Deployment`).
pub fn schema_for_definition(name: &str) -> Option<TypeRef> {
    base().named.get(name).map(|&root| TypeRef { types: shared_types(), root, go_struct: true })
}

/// No schema: every map granular, every list atomic.
pub fn deduced() -> TypeRef {
    TypeRef { types: shared_types(), root: DEDUCED, go_struct: false }
}

/// A schema given as JSON schema (a CRD version's `openAPIV3Schema`). Like
/// upstream, the root gets `apiVersion`, `kind` and `metadata` (ObjectMeta)
/// when it does not declare them, and so do `x-kubernetes-embedded-resource`
/// objects.
pub fn schema_from_openapi_v3(schema: &Value) -> TypeRef {
    let b = base();
    let offset = b.atoms.len() as TyId;
    let mut conv = Converter { named: &b.named, atoms: vec![], offset, variants: vec![] };
    let mut atom = conv.atom(schema, false, None);
    if let Some(m) = atom.map.as_mut() {
        let mut fields = std::mem::take(&mut m.fields);
        conv.add_embedded_fields(&mut fields);
        if let Some(m) = atom.map.as_mut() {
            m.fields = fields;
        }
    }
    let root = conv.push(atom);
    let variants = std::mem::take(&mut conv.variants);
    let mut atoms = conv.atoms;
    resolve_variants(&mut atoms, offset, &b.atoms, &variants);
    TypeRef { types: Arc::new(Types { local: atoms }), root, go_struct: false }
}

impl TypeRef {
    pub(crate) fn atom(&self, id: TyId) -> &Atom {
        self.types.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field<'a>(t: &'a TypeRef, id: TyId, name: &str) -> (TyId, &'a Atom) {
        let f = t.atom(id).map.as_ref().and_then(|m| m.fields.get(name)).map(|f| f.ty).unwrap_or(u32::MAX);
        (f, t.atom(f))
    }

    #[test]
    fn builtin_lists_and_maps() {
        let t = schema_for("apps", "v1", "Deployment");
        let (spec, _) = field(&t, t.root, "spec");
        let (sel, sel_atom) = field(&t, spec, "selector");
        assert!(sel_atom.map.as_ref().is_some_and(|m| m.atomic), "LabelSelector is atomic");
        let _ = sel;
        let (tmpl, _) = field(&t, spec, "template");
        let (pspec, _) = field(&t, tmpl, "spec");
        let (_, containers) = field(&t, pspec, "containers");
        let l = containers.list.as_ref().map(|l| l.kind.clone());
        assert_eq!(l, Some(ListKind::Map(vec!["name".into()])));
        let celem = containers.list.as_ref().map(|l| l.elem).unwrap_or(0);
        let (_, ports) = field(&t, celem, "ports");
        assert_eq!(
            ports.list.as_ref().map(|l| l.kind.clone()),
            Some(ListKind::Map(vec!["containerPort".into(), "protocol".into()]))
        );
        let (_, args) = field(&t, celem, "args");
        assert_eq!(args.list.as_ref().map(|l| l.kind.clone()), Some(ListKind::Atomic));
        let (meta, _) = field(&t, t.root, "metadata");
        let (_, fin) = field(&t, meta, "finalizers");
        assert_eq!(fin.list.as_ref().map(|l| l.kind.clone()), Some(ListKind::Set));
        let (_, labels) = field(&t, meta, "labels");
        assert!(labels.map.as_ref().is_some_and(|m| !m.atomic && m.elem.is_some()));
    }

    #[test]
    fn patch_merge_key_without_list_type_is_associative() {
        let s = json!({"type": "array", "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "ip"});
        assert_eq!(list_kind(&s), ListKind::Map(vec!["ip".into()]));
        assert_eq!(list_kind(&json!({"type": "array"})), ListKind::Atomic);
        assert_eq!(list_kind(&json!({"x-kubernetes-patch-strategy": "retainKeys"})), ListKind::Atomic);
    }

    #[test]
    fn crd_schema_gets_metadata() {
        let t = schema_from_openapi_v3(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}}}));
        let (_, meta) = field(&t, t.root, "metadata");
        assert!(meta.map.as_ref().is_some_and(|m| m.fields.contains_key("labels")));
        let (spec, _) = field(&t, t.root, "spec");
        let (_, items) = field(&t, spec, "items");
        assert_eq!(items.list.as_ref().map(|l| l.kind.clone()), Some(ListKind::Atomic));
    }
}
