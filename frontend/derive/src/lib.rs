//! `#[derive(Module)]` for ferrograd models (re-exported as `ferrograd::nn::Module`).
//!
//! The derive implements `ferrograd::nn::Module` for a struct with named fields:
//! `visit_state` visits every field under its name (`visit_child("conv1", &self.conv1, f)`,
//! so nested modules give `conv1.weight`, a `Vec` gives `layers.0.weight`), and `set_training`
//! forwards to every field, in declaration order. Field attributes:
//!
//! - `#[module(skip)]`: not part of the state (integers, configuration, closures); the field's
//!   type need not implement `Module`.
//! - `#[module(buffer)]`: the field's tensors are buffers (saved and loaded, not trained), e.g.
//!   running statistics; a bare `Tensor` field is otherwise a parameter.
//!
//! Generic structs get a `Field: Module` bound for every visited field whose type mentions a
//! type parameter. Enums, tuple structs and unions are rejected with a compile error.

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{parse_quote, Data, DeriveInput, Field, Fields, Ident, Type};

/// Implements `ferrograd::nn::Module` for a struct with named fields (see the crate docs for
/// the `#[module(skip)]` and `#[module(buffer)]` field attributes).
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// How a field takes part in the module's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Visited as a child module (a bare tensor is a parameter).
    Child,
    /// Visited as a child module whose tensors are all reported as buffers.
    Buffer,
    /// Not visited, not forwarded to.
    Skip,
}

/// The role a field's `#[module(...)]` attributes give it.
fn role(field: &Field) -> syn::Result<Role> {
    let mut role = Role::Child;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let new = if meta.path.is_ident("skip") {
                Role::Skip
            } else if meta.path.is_ident("buffer") {
                Role::Buffer
            } else {
                return Err(meta.error(
                    "unknown `module` attribute: expected `#[module(skip)]` or `#[module(buffer)]`",
                ));
            };
            if role != Role::Child {
                return Err(meta.error("a field takes at most one of `skip` and `buffer`"));
            }
            role = new;
            Ok(())
        })?;
    }
    Ok(role)
}

/// The named fields of a struct, or the error for anything else.
fn named_fields(input: &DeriveInput) -> syn::Result<Vec<&Field>> {
    let what = |kind: &str| {
        format!(
            "#[derive(Module)] needs a struct with named fields; `{}` is {kind}",
            input.ident
        )
    };
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Ok(named.named.iter().collect()),
            Fields::Unit => Ok(Vec::new()),
            Fields::Unnamed(fields) => Err(syn::Error::new(
                fields.span(),
                what("a tuple struct (name its fields)"),
            )),
        },
        Data::Enum(e) => Err(syn::Error::new(e.enum_token.span, what("an enum"))),
        Data::Union(u) => Err(syn::Error::new(u.union_token.span, what("a union"))),
    }
}

/// True if `tokens` contain one of `params` as an identifier (at any depth).
fn mentions(tokens: TokenStream2, params: &[Ident]) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => params.contains(&i),
        TokenTree::Group(g) => mentions(g.stream(), params),
        _ => false,
    })
}

/// The `impl Module` for `input`.
fn expand(mut input: DeriveInput) -> syn::Result<TokenStream2> {
    let nn = quote!(::ferrograd::nn);
    let mut visits = Vec::new();
    let mut forwards = Vec::new();
    let mut bounds: Vec<Type> = Vec::new();
    let params: Vec<Ident> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    for field in named_fields(&input)? {
        let role = role(field)?;
        if role == Role::Skip {
            continue;
        }
        let ident = field.ident.as_ref().expect("named field");
        let name = ident.unraw().to_string();
        visits.push(match role {
            Role::Buffer => quote! {
                #nn::visit_child(#name, &self.#ident, &mut |name: &str, t: &::ferrograd::Tensor, _| {
                    f(name, t, #nn::StateKind::Buffer)
                });
            },
            _ => quote! { #nn::visit_child(#name, &self.#ident, f); },
        });
        forwards.push(quote! { #nn::Module::set_training(&self.#ident, training); });
        let ty = &field.ty;
        if mentions(quote!(#ty), &params) && !bounds.contains(ty) {
            bounds.push(ty.clone());
        }
    }
    if !bounds.is_empty() {
        let clause = input.generics.make_where_clause();
        for ty in bounds {
            clause.predicates.push(parse_quote!(#ty: #nn::Module));
        }
    }
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #nn::Module for #ident #ty_generics #where_clause {
            #[allow(unused_variables)]
            fn visit_state(
                &self,
                f: &mut dyn FnMut(&str, &::ferrograd::Tensor, #nn::StateKind),
            ) {
                #(#visits)*
            }
            #[allow(unused_variables)]
            fn set_training(&self, training: bool) {
                #(#forwards)*
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(src: &str) -> String {
        let input: DeriveInput = syn::parse_str(src).expect("valid item");
        expand(input).expect_err("derive must fail").to_string()
    }

    fn expansion(src: &str) -> String {
        let input: DeriveInput = syn::parse_str(src).expect("valid item");
        expand(input).expect("derive succeeds").to_string()
    }

    #[test]
    fn rejects_enums_tuple_structs_and_unions() {
        assert_eq!(
            error("enum E { A, B }"),
            "#[derive(Module)] needs a struct with named fields; `E` is an enum"
        );
        assert_eq!(
            error("struct T(Tensor, Tensor);"),
            "#[derive(Module)] needs a struct with named fields; `T` is a tuple struct (name its fields)"
        );
        assert_eq!(
            error("union U { a: u32, b: f32 }"),
            "#[derive(Module)] needs a struct with named fields; `U` is a union"
        );
    }

    #[test]
    fn rejects_unknown_and_conflicting_attributes() {
        assert!(error("struct S { #[module(frozen)] w: Tensor }")
            .starts_with("unknown `module` attribute"));
        assert_eq!(
            error("struct S { #[module(skip, buffer)] w: Tensor }"),
            "a field takes at most one of `skip` and `buffer`"
        );
        assert_eq!(
            error("struct S { #[module(buffer)] #[module(buffer)] w: Tensor }"),
            "a field takes at most one of `skip` and `buffer`"
        );
    }

    #[test]
    fn bounds_only_fields_that_mention_type_parameters() {
        let out = expansion(
            "struct S<L, const N: usize> { a: L, b: Vec<L>, c: Linear, #[module(skip)] d: [L; N] }",
        );
        assert!(
            out.contains(
                "where L : :: ferrograd :: nn :: Module , Vec < L > : :: ferrograd :: nn :: Module"
            ),
            "{out}"
        );
        assert!(!out.contains("Linear : :: ferrograd"), "{out}");
        assert!(!out.contains("[L ; N] :"), "{out}");
    }

    #[test]
    fn raw_identifiers_are_named_without_prefix() {
        let out = expansion("struct S { r#type: Tensor }");
        assert!(
            out.contains("visit_child (\"type\" , & self . r#type , f)"),
            "{out}"
        );
    }
}
