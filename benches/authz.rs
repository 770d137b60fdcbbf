//! The permission decision for a user with 50 roles of 20 permissions each (goal: at most
//! 2 µs, no database). Beside it, the same question answered by scanning every pattern with
//! `perms::matches`: the naive way, as the baseline.
//!
//!   cargo bench --bench authz

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use demiurge::db::orgs::{Memberships, RoleRow};
use demiurge::orgs::authz::{Compiler, Decision, Resource};
use demiurge::orgs::perms::{Catalogue, Level, PermissionDef, Scope, matches};

fn setup() -> (Compiler, Memberships, Vec<String>) {
    // 20 modules × 10 resources × 5 actions of project permissions, as modules would declare.
    let mut defs = Vec::new();
    for m in 0..20 {
        for r in 0..10 {
            for a in ["read", "create", "update", "delete", "share"] {
                let name: &'static str = Box::leak(format!("mod{m}:res{r}:{a}").into_boxed_str());
                defs.push(PermissionDef {
                    name,
                    description: "benchmark",
                    scope: Scope::Project,
                    level: if a == "read" {
                        Level::Read
                    } else {
                        Level::Write
                    },
                });
            }
        }
    }
    let mut catalogue = Catalogue::default();
    catalogue.register(&defs);
    let compiler = Compiler::new(catalogue);
    // 50 custom roles of 20 patterns each (a quarter of them wildcards); one org role and 49
    // project roles.
    let mut roles = Vec::new();
    let mut all_patterns = Vec::new();
    for i in 0..50 {
        let perms: Vec<String> = (0..20)
            .map(|j| {
                let m = (i + j) % 20;
                match j % 4 {
                    0 => format!("mod{m}:*:read"),
                    _ => format!(
                        "mod{m}:res{}:{}",
                        (i * 7 + j) % 10,
                        ["create", "update", "delete"][j % 3]
                    ),
                }
            })
            .collect();
        all_patterns.extend(perms.iter().cloned());
        roles.push(RoleRow {
            id: format!("role{i}"),
            org_id: "org".into(),
            name: format!("Role {i}"),
            name_lower: format!("role {i}"),
            scope: if i == 0 {
                "org".into()
            } else {
                "project".into()
            },
            description: String::new(),
            permissions: serde_json::to_string(&perms).unwrap(),
            created_at: chrono::NaiveDateTime::default(),
        });
    }
    let memberships = Memberships {
        orgs: vec![("org".into(), "role0".into())],
        projects: (1..50)
            .map(|i| (format!("p{i}"), "org".into(), format!("role{i}")))
            .chain(std::iter::once((
                "p0".into(),
                "org".into(),
                "project:viewer".into(),
            )))
            .collect(),
        custom_roles: roles,
    };
    (compiler, memberships, all_patterns)
}

fn bench(c: &mut Criterion) {
    let (compiler, memberships, patterns) = setup();
    let grants = compiler.compile(&memberships);
    let on = Resource::Project {
        org: "org",
        project: "p7",
    };
    assert_eq!(
        compiler.decide(
            &grants,
            "project:project:read",
            Resource::Project {
                org: "org",
                project: "p0"
            }
        ),
        Decision::Allow
    );
    let mut g = c.benchmark_group("permission decision, 50 roles x 20 permissions");
    g.bench_function("demiurge: compiled grants, allowed", |b| {
        b.iter(|| {
            compiler.decide(
                black_box(&grants),
                black_box("mod7:res3:read"),
                black_box(on),
            )
        })
    });
    g.bench_function("demiurge: compiled grants, denied", |b| {
        b.iter(|| {
            compiler.decide(
                black_box(&grants),
                black_box("mod7:res3:share"),
                black_box(on),
            )
        })
    });
    g.bench_function("baseline: scan every pattern", |b| {
        b.iter(|| {
            patterns
                .iter()
                .any(|p| matches(black_box(p), black_box("mod7:res3:share")))
        })
    });
    g.bench_function("demiurge: compile the grants (after a change)", |b| {
        b.iter(|| compiler.compile(black_box(&memberships)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
