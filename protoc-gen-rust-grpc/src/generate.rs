//! Emission of one `<module>_grpc.rs` file.

use std::collections::BTreeMap;

use proc_macro2::{Ident, Span, TokenStream};
use protobuf::descriptor::{FileDescriptorProto, MethodDescriptorProto};
use quote::{format_ident, quote};

use crate::docs::Comments;
use crate::naming::{self, RustIdent};
use crate::resolve::{MessagePath, ResolveError, TypeIndex};
use crate::{Error, Options};

/// The version of the contract between generated code and `grpc_runtime::codegen`.
pub(crate) const CODEGEN_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    BidiStreaming,
}

struct Method<'a> {
    proto: &'a MethodDescriptorProto,
    /// Client and trait method name.
    fn_name: RustIdent,
    /// Path constant in the service module.
    const_name: Ident,
    input: MessagePath,
    output: MessagePath,
    kind: Kind,
    docs: Vec<String>,
    deprecated: bool,
}

struct Service<'a> {
    full_name: String,
    module: RustIdent,
    trait_name: RustIdent,
    client: Ident,
    server: Ident,
    methods: Vec<Method<'a>>,
    docs: Vec<String>,
    deprecated: bool,
}

fn doc_attrs(lines: &[String]) -> TokenStream {
    quote!(#(#[doc = #lines])*)
}

fn doc_line(s: &str) -> TokenStream {
    let s = format!(" {s}");
    quote!(#[doc = #s])
}

/// Collects the name of a generated item and fails on a second item of the same name.
struct Namespace<'f> {
    file: &'f str,
    what: &'static str,
    seen: BTreeMap<String, String>,
}

impl<'f> Namespace<'f> {
    fn new(file: &'f str, what: &'static str) -> Self {
        Namespace {
            file,
            what,
            seen: BTreeMap::new(),
        }
    }

    fn is_free(&self, name: &str) -> bool {
        !self.seen.contains_key(name)
    }

    fn claim(&mut self, name: &str, owner: String) -> Result<(), Error> {
        if let Some(first) = self.seen.get(name) {
            return Err(Error::NameCollision {
                file: self.file.to_owned(),
                what: self.what,
                name: name.to_owned(),
                first: first.clone(),
                second: owner,
            });
        }
        self.seen.insert(name.to_owned(), owner);
        Ok(())
    }
}

fn plain_ident(s: &str) -> Ident {
    Ident::new(s, Span::call_site())
}

fn analyze<'a>(
    file: &'a FileDescriptorProto,
    index: &TypeIndex,
) -> Result<Vec<Service<'a>>, Error> {
    let comments = Comments::new(file);
    let file_name = file.name();
    let mut items = Namespace::new(file_name, "item");
    let mut services = Vec::new();
    for (si, s) in file.service.iter().enumerate() {
        let full_name = if file.package().is_empty() {
            s.name().to_owned()
        } else {
            format!("{}.{}", file.package(), s.name())
        };
        let module_snake = naming::snake_case(s.name());
        if module_snake.is_empty() {
            return Err(Error::InvalidName {
                file: file_name.to_owned(),
                name: s.name().to_owned(),
            });
        }
        // Names taken by an earlier service (`Foo` and `foo`, `FooBar` and `Foo_Bar`, a
        // service named `FooClient` beside `Foo`): the later service's items all get the
        // first number from 2 that frees every one of them (`foo_2`, `Foo2`, `Foo2Client`).
        let (module, trait_name, client, server) = (1..)
            .map(|n: u32| {
                let (snake_suffix, suffix) = match n {
                    1 => (String::new(), String::new()),
                    n => (format!("_{n}"), n.to_string()),
                };
                (
                    naming::rust_ident(&format!("{module_snake}{snake_suffix}")),
                    naming::rust_ident(&format!("{}{suffix}", s.name())),
                    format_ident!("{}{suffix}Client", s.name()),
                    format_ident!("{}{suffix}Server", s.name()),
                )
            })
            .find(|(module, trait_name, client, server)| {
                let names = [
                    module.name().to_owned(),
                    trait_name.name().to_owned(),
                    client.to_string(),
                    server.to_string(),
                ];
                names.iter().all(|n| items.is_free(n)) && names[1..].iter().all(|n| *n != names[0])
            })
            .expect("some number frees the names");
        let owner = format!("service `{full_name}`");
        items.claim(module.name(), owner.clone())?;
        items.claim(trait_name.name(), owner.clone())?;
        items.claim(&client.to_string(), owner.clone())?;
        items.claim(&server.to_string(), owner)?;

        let mut fns = Namespace::new(file_name, "method");
        let mut consts = Namespace::new(file_name, "constant");
        consts.claim("SERVICE_NAME", format!("service `{full_name}`"))?;
        consts.claim("DESCRIPTOR", format!("service `{full_name}`"))?;
        let mut methods = Vec::new();
        for (mi, m) in s.method.iter().enumerate() {
            let owner = format!("method `{full_name}.{}`", m.name());
            let snake = naming::snake_case(m.name());
            if snake.is_empty() {
                return Err(Error::InvalidName {
                    file: file_name.to_owned(),
                    name: m.name().to_owned(),
                });
            }
            let mut base_const = naming::screaming_snake_case(m.name());
            if base_const == "SERVICE_NAME" || base_const == "DESCRIPTOR" {
                base_const.push_str("_METHOD");
            }
            // RPCs whose Rust names coincide (`Foo` and `foo`, `GetX` and `Get_X`): the later
            // one's function and constant get the first number from 2 that frees both
            // (`foo_2`, `FOO_2`).
            let (fn_name, const_name) = (1..)
                .map(|n: u32| {
                    let (snake, const_name) = match n {
                        1 => (snake.clone(), base_const.clone()),
                        n => (format!("{snake}_{n}"), format!("{base_const}_{n}")),
                    };
                    let fn_name = match snake.as_str() {
                        "new" | "with_options" => RustIdent::Plain(format!("{snake}_")),
                        _ => naming::rust_ident(&snake),
                    };
                    (fn_name, const_name)
                })
                .find(|(fn_name, const_name)| {
                    fns.is_free(fn_name.name()) && consts.is_free(const_name)
                })
                .expect("some number frees the names");
            fns.claim(fn_name.name(), owner.clone())?;
            consts.claim(&const_name, owner)?;
            let resolve = |ty: &str| {
                index.resolve(ty).map_err(|reason| Error::UnresolvedType {
                    file: file_name.to_owned(),
                    method: format!("{full_name}.{}", m.name()),
                    type_name: ty.to_owned(),
                    reason: match reason {
                        ResolveError::NotFound => {
                            "no message of that name in the file or its imports".to_owned()
                        }
                        ResolveError::NotAMessage => "it is an enum, not a message".to_owned(),
                        ResolveError::MisplacedWellKnownType(f) => format!(
                            "it is a well-known type's name but is defined in `{f}`, \
                             outside google/protobuf/"
                        ),
                    },
                })
            };
            let kind = match (m.client_streaming(), m.server_streaming()) {
                (false, false) => Kind::Unary,
                (false, true) => Kind::ServerStreaming,
                (true, false) => Kind::ClientStreaming,
                (true, true) => Kind::BidiStreaming,
            };
            methods.push(Method {
                proto: m,
                fn_name,
                const_name: plain_ident(&const_name),
                input: resolve(m.input_type())?,
                output: resolve(m.output_type())?,
                kind,
                docs: comments.method(si, mi),
                deprecated: m.options.as_ref().is_some_and(|o| o.deprecated()),
            });
        }
        services.push(Service {
            full_name,
            module,
            trait_name,
            client,
            server,
            methods,
            docs: comments.service(si),
            deprecated: s.options.as_ref().is_some_and(|o| o.deprecated()),
        });
    }
    Ok(services)
}

struct Emitter {
    /// `<runtime_crate>::codegen`.
    rt: TokenStream,
    options: Options,
    /// The `.proto` file's name (its messages module is named from it).
    file_name: String,
}

impl Emitter {
    fn service_module(&self, s: &Service<'_>) -> TokenStream {
        let rt = &self.rt;
        let module = s.module.to_ident();
        let module_doc = doc_line(&format!(
            "Names and descriptor of the `{}` service.",
            s.full_name
        ));
        let full_name = &s.full_name;
        let consts = s.methods.iter().map(|m| {
            let c = &m.const_name;
            let path = format!("/{}/{}", s.full_name, m.proto.name());
            let doc = doc_line(&format!("Path of the `{}` method.", m.proto.name()));
            quote! {
                #doc
                pub const #c: &str = #path;
            }
        });
        let descriptors = s.methods.iter().map(|m| {
            let name = m.proto.name();
            let c = &m.const_name;
            let kind = match m.kind {
                Kind::Unary => quote!(Unary),
                Kind::ServerStreaming => quote!(ServerStreaming),
                Kind::ClientStreaming => quote!(ClientStreaming),
                Kind::BidiStreaming => quote!(BidiStreaming),
            };
            quote! {
                #rt::MethodDescriptor::new(#name, #c, #rt::MethodKind::#kind)
            }
        });
        let file_module = format_ident!("{}", naming::file_module_name(&self.file_name));
        quote! {
            #module_doc
            pub mod #module {
                /// Fully-qualified name of the service.
                pub const SERVICE_NAME: &str = #full_name;
                #(#consts)*
                /// Descriptor of the service: its methods, their streaming kinds, and the
                /// descriptor of the file declaring it.
                pub static DESCRIPTOR: #rt::ServiceDescriptor = #rt::ServiceDescriptor::new(
                    SERVICE_NAME,
                    &[#(#descriptors),*],
                )
                .with_file_descriptor(super::super::#file_module::file_descriptor);
            }
        }
    }

    fn deprecated(flag: bool) -> TokenStream {
        if flag {
            quote!(#[deprecated])
        } else {
            quote!()
        }
    }

    fn client(&self, s: &Service<'_>) -> TokenStream {
        let rt = &self.rt;
        let client = &s.client;
        let module = s.module.to_ident();
        let head = doc_line(&format!("Client for the `{}` service.", s.full_name));
        let docs = doc_attrs(&s.docs);
        let sep = if s.docs.is_empty() {
            quote!()
        } else {
            quote!(#[doc = ""])
        };
        let deprecated = Self::deprecated(s.deprecated);
        let methods = s.methods.iter().enumerate().map(|(i, m)| {
            let name = m.fn_name.to_ident();
            // The proto comment, then what the error is (clippy's `missing_errors_doc`).
            let mut lines = m.docs.clone();
            if !lines.is_empty() {
                lines.push(String::new());
            }
            lines.push(" # Errors".to_owned());
            lines.push(String::new());
            lines.push(
                match m.kind {
                    Kind::Unary | Kind::ClientStreaming => {
                        " The call's status if it does not end `OK`."
                    }
                    Kind::ServerStreaming => {
                        " The call's status if it ends before its response headers (later \
                         failures come from the stream)."
                    }
                    Kind::BidiStreaming => {
                        " The call's status if it cannot start (later failures come from \
                         the streams)."
                    }
                }
                .to_owned(),
            );
            let docs = doc_attrs(&lines);
            let deprecated = Self::deprecated(m.deprecated);
            let input = m.input.to_tokens();
            let output = m.output.to_tokens();
            let index = proc_macro2::Literal::usize_unsuffixed(i);
            let method = quote!(&#module::DESCRIPTOR.methods[#index]);
            let codec = quote!(#rt::ProtobufCodec::new());
            let status = quote!(#rt::Status);
            match m.kind {
                Kind::Unary => quote! {
                    #docs
                    #deprecated
                    pub async fn #name(
                        &self,
                        request: impl #rt::IntoRequest<#input>,
                    ) -> ::std::result::Result<#rt::Response<#output>, #status> {
                        self.inner.unary(#method, request.into_request(), #codec).await
                    }
                },
                Kind::ServerStreaming => quote! {
                    #docs
                    #deprecated
                    pub async fn #name(
                        &self,
                        request: impl #rt::IntoRequest<#input>,
                    ) -> ::std::result::Result<#rt::Streaming<#output>, #status> {
                        self.inner.server_streaming(#method, request.into_request(), #codec).await
                    }
                },
                Kind::ClientStreaming => quote! {
                    #docs
                    #deprecated
                    pub async fn #name(
                        &self,
                        request: impl #rt::IntoStreamingRequest<Message = #input>,
                    ) -> ::std::result::Result<#rt::Response<#output>, #status> {
                        self.inner
                            .client_streaming(#method, request.into_streaming_request(), #codec)
                            .await
                    }
                },
                Kind::BidiStreaming => quote! {
                    #docs
                    #deprecated
                    pub async fn #name(
                        &self,
                        request: impl #rt::IntoRequest<()>,
                    ) -> ::std::result::Result<(#rt::RequestSender<#input>, #rt::Streaming<#output>), #status> {
                        self.inner.bidi_streaming(#method, request.into_request(), #codec).await
                    }
                },
            }
        });
        quote! {
            #head
            #sep
            #docs
            #deprecated
            #[derive(Debug, Clone)]
            pub struct #client<C = #rt::Channel> {
                inner: #rt::Client<C>,
            }

            impl<C: #rt::CallInvoker> #client<C> {
                /// Creates a client that issues its calls on `channel` (a `Channel`, or any
                /// other `CallInvoker`).
                pub fn new(channel: C) -> Self {
                    Self { inner: #rt::Client::new(channel) }
                }

                /// Sets the default options (compression, message size limits, timeout) of this client's calls.
                #[must_use]
                pub fn with_options(mut self, options: #rt::CallOptions) -> Self {
                    self.inner = self.inner.with_options(options);
                    self
                }

                #(#methods)*
            }
        }
    }

    fn request_types(&self, m: &Method<'_>) -> (TokenStream, Option<TokenStream>) {
        let rt = &self.rt;
        let input = m.input.to_tokens();
        let output = m.output.to_tokens();
        let request = match m.kind {
            Kind::Unary | Kind::ServerStreaming => quote!(#rt::Request<#input>),
            _ => quote!(#rt::Request<#rt::Streaming<#input>>),
        };
        let sender = match m.kind {
            Kind::ServerStreaming | Kind::BidiStreaming => {
                Some(quote!(#rt::ResponseSender<#output>))
            }
            _ => None,
        };
        (request, sender)
    }

    fn server(&self, s: &Service<'_>) -> TokenStream {
        let rt = &self.rt;
        let trait_name = s.trait_name.to_ident();
        let server = &s.server;
        let module = s.module.to_ident();
        // The server's type parameter; a service named `T` gets another one.
        let t = if s.trait_name.name() == "T" {
            quote!(U)
        } else {
            quote!(T)
        };
        let head = doc_line(&format!(
            "Server-side handler of the `{}` service.",
            s.full_name
        ));
        let docs = doc_attrs(&s.docs);
        let sep = if s.docs.is_empty() {
            quote!()
        } else {
            quote!(#[doc = ""])
        };
        let deprecated = Self::deprecated(s.deprecated);
        let server_doc = doc_line(&format!(
            "Serves a [`{}`] implementation: register it with `Server::builder().add_service(..)`.",
            s.trait_name.as_source()
        ));

        let trait_methods = s.methods.iter().map(|m| {
            let name = m.fn_name.to_ident();
            let docs = doc_attrs(&m.docs);
            let deprecated = Self::deprecated(m.deprecated);
            let output = m.output.to_tokens();
            let (request, sender) = self.request_types(m);
            let message = format!("method {} is not implemented", m.proto.name());
            let unimplemented =
                quote!(::std::result::Result::Err(#rt::Status::unimplemented(#message)));
            match sender {
                None => quote! {
                    #docs
                    #deprecated
                    fn #name(
                        &self,
                        request: #request,
                    ) -> impl ::std::future::Future<Output = ::std::result::Result<#rt::Response<#output>, #rt::Status>> + ::std::marker::Send {
                        async move {
                            let _ = request;
                            #unimplemented
                        }
                    }
                },
                Some(sender) => quote! {
                    #docs
                    #deprecated
                    fn #name(
                        &self,
                        request: #request,
                        responses: #sender,
                    ) -> impl ::std::future::Future<Output = ::std::result::Result<(), #rt::Status>> + ::std::marker::Send {
                        async move {
                            let _ = (request, responses);
                            #unimplemented
                        }
                    }
                },
            }
        });

        let arms = s.methods.iter().enumerate().map(|(i, m)| {
            let name = m.fn_name.to_ident();
            let proto_name = m.proto.name();
            let (request, sender) = self.request_types(m);
            let index = proc_macro2::Literal::usize_unsuffixed(i);
            let method = quote!(&#module::DESCRIPTOR.methods[#index]);
            let codec = quote!(#rt::ProtobufCodec::new());
            let call = match m.kind {
                Kind::Unary => quote!(unary),
                Kind::ServerStreaming => quote!(server_streaming),
                Kind::ClientStreaming => quote!(client_streaming),
                Kind::BidiStreaming => quote!(bidi_streaming),
            };
            match sender {
                None => quote! {
                    #proto_name => {
                        call.#call(
                            #method,
                            #codec,
                            move |request: #request| async move {
                                <#t as #trait_name>::#name(&inner, request).await
                            },
                        );
                    }
                },
                Some(sender) => quote! {
                    #proto_name => {
                        call.#call(
                            #method,
                            #codec,
                            move |request: #request, responses: #sender| async move {
                                <#t as #trait_name>::#name(&inner, request, responses).await
                            },
                        );
                    }
                },
            }
        });
        let inner = if s.methods.is_empty() {
            quote!()
        } else {
            quote!(let inner = ::std::sync::Arc::clone(&self.inner);)
        };
        let server_name = server.to_string();

        quote! {
            #head
            #sep
            #docs
            #[doc = ""]
            /// Every method has a default body answering `UNIMPLEMENTED`, so adding a method to the
            /// service does not break existing implementations.
            #deprecated
            pub trait #trait_name: ::std::marker::Send + ::std::marker::Sync + 'static {
                #(#trait_methods)*
            }

            #server_doc
            #deprecated
            pub struct #server<#t> {
                inner: ::std::sync::Arc<#t>,
            }

            impl<#t: #trait_name> #server<#t> {
                /// Wraps `service` for registration with a server.
                pub fn new(service: #t) -> Self {
                    Self { inner: ::std::sync::Arc::new(service) }
                }

                /// Wraps a shared `service`.
                pub fn from_arc(service: ::std::sync::Arc<#t>) -> Self {
                    Self { inner: service }
                }
            }

            impl<#t> ::std::clone::Clone for #server<#t> {
                fn clone(&self) -> Self {
                    Self { inner: ::std::sync::Arc::clone(&self.inner) }
                }
            }

            impl<#t> ::std::fmt::Debug for #server<#t> {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.write_str(#server_name)
                }
            }

            impl<#t: #trait_name> #rt::Service for #server<#t> {
                fn descriptor(&self) -> &'static #rt::ServiceDescriptor {
                    &#module::DESCRIPTOR
                }

                fn call(&self, method: &str, call: #rt::ServerCall) {
                    #inner
                    match method {
                        #(#arms)*
                        _ => {
                            call.unimplemented();
                        }
                    }
                }
            }
        }
    }
}

/// The attributes of `configured` whose proto paths match the service `full_name`.
fn attributes(
    configured: &[(String, String)],
    full_name: &str,
) -> Result<Vec<syn::Attribute>, Error> {
    let mut out = Vec::new();
    for (path, attr) in configured {
        if crate::proto_path_matches(path, full_name) {
            let parsed = syn::parse::Parser::parse_str(syn::Attribute::parse_outer, attr)
                .map_err(|_| Error::InvalidAttribute(attr.clone()))?;
            out.extend(parsed);
        }
    }
    Ok(out)
}

/// `items` with `attrs` on each of its items (a struct or trait and its impl blocks).
fn with_attributes(
    items: TokenStream,
    attrs: &[syn::Attribute],
    file: &str,
) -> Result<TokenStream, Error> {
    if attrs.is_empty() {
        return Ok(items);
    }
    let mut parsed: syn::File = syn::parse2(items).map_err(|e| Error::Internal {
        file: file.to_owned(),
        message: format!("generated items do not parse: {e}"),
    })?;
    for item in &mut parsed.items {
        let item_attrs = match item {
            syn::Item::Struct(i) => &mut i.attrs,
            syn::Item::Impl(i) => &mut i.attrs,
            syn::Item::Trait(i) => &mut i.attrs,
            syn::Item::Mod(i) => &mut i.attrs,
            _ => continue,
        };
        // After the docs, before the rest (derives, `#[deprecated]`).
        let at = item_attrs
            .iter()
            .take_while(|a| a.path().is_ident("doc"))
            .count();
        item_attrs.splice(at..at, attrs.iter().cloned());
    }
    Ok(quote!(#parsed))
}

/// Generates the stubs of `file`, or `None` if it has no services.
pub(crate) fn generate_file(
    file: &FileDescriptorProto,
    index: &TypeIndex,
    options: &Options,
    runtime: &syn::Path,
) -> Result<Option<String>, Error> {
    if file.service.is_empty() {
        return Ok(None);
    }
    let services = analyze(file, index)?;
    let emitter = Emitter {
        rt: quote!(#runtime::codegen),
        options: options.clone(),
        file_name: file.name().to_owned(),
    };
    let rt = &emitter.rt;
    let mut body = TokenStream::new();
    for s in &services {
        body.extend(emitter.service_module(s));
        if emitter.options.build_client {
            let attrs = attributes(&options.client_attributes, &s.full_name)?;
            body.extend(with_attributes(emitter.client(s), &attrs, file.name())?);
        }
        if emitter.options.build_server {
            let attrs = attributes(&options.server_attributes, &s.full_name)?;
            body.extend(with_attributes(emitter.server(s), &attrs, file.name())?);
        }
    }
    let version = proc_macro2::Literal::u32_unsuffixed(CODEGEN_VERSION);
    let tokens = quote! {
        #![allow(unused_imports, unused_qualifications, dead_code, deprecated, missing_docs, non_camel_case_types, non_snake_case, clippy::all, clippy::doc_markdown, clippy::too_many_lines)]

        const _: () = #rt::assert_codegen_version(#version);

        #body
    };
    let syntax: syn::File = syn::parse2(tokens).map_err(|e| Error::Internal {
        file: file.name().to_owned(),
        message: format!("generated code does not parse: {e}"),
    })?;
    let code = space_items(&prettyplease::unparse(&syntax));
    Ok(Some(format!(
        "// @generated by protoc-gen-rust-grpc {}. Do not edit.\n// source: {}\n{}",
        env!("CARGO_PKG_VERSION"),
        file.name(),
        code
    )))
}

/// Puts a blank line between consecutive items (prettyplease puts none), for readability.
fn space_items(code: &str) -> String {
    const ITEM_STARTS: &[&str] = &[
        "///", "#[", "pub ", "fn ", "impl", "const ", "static ", "mod ", "trait ", "struct ",
    ];
    let lines: Vec<&str> = code.lines().collect();
    let mut out = String::with_capacity(code.len() + code.len() / 20);
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        let Some(next) = lines.get(i + 1) else { break };
        let indent = line.len() - line.trim_start().len();
        let next_indent = next.len() - next.trim_start().len();
        let ends_item =
            matches!(line.trim_start(), "}" | "};" | ")]") || (indent == 0 && line.ends_with(';'));
        let starts_item = ITEM_STARTS.iter().any(|s| next.trim_start().starts_with(s));
        if ends_item && starts_item && indent == next_indent {
            out.push('\n');
        }
    }
    out
}
