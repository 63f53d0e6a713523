//! `GET /doctor` and `POST /doctor/fix`: the daemon's examination of its host (an addition to the
//! Kleened API 0.1.1; `klee doctor [--fix]`).

use std::sync::Arc;

use http::StatusCode;
use kleene_api::DoctorReport;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{reply, with_engine};
use crate::engine::Engine;

pub(super) fn routes(engine: Arc<Engine>) -> BoxedFilter<(Response,)> {
    let check = warp::path!("doctor")
        .and(warp::get())
        .and(with_engine(engine.clone()))
        .then(check);
    let fix = warp::path!("doctor" / "fix")
        .and(warp::post())
        .and(with_engine(engine))
        .then(fix);
    check.or(fix).unify().boxed()
}

/// Checks the daemon's host: the ZFS root and its children, the pool, the packet filter,
/// forwarding, kernel modules (FreeBSD) or cgroup controllers (Linux), and leftovers no object
/// owns. Each finding that is not `ok` names the command that fixes it. `healthy` is true when
/// every finding is `ok`.
#[utoipa::path(
    get, path = "/doctor", operation_id = "System.Doctor", tag = "System",
    responses((status = 200, description = "the findings, problems first", body = DoctorReport))
)]
pub(super) async fn check(engine: Arc<Engine>) -> Response {
    reply::json(StatusCode::OK, &engine.doctor(false).await)
}

/// Does the fixes that are safe (`automatic` findings: leftover container and image datasets,
/// empty leftover cgroups, stray mounts and interfaces, forwarding, the layout), then checks
/// again: `fixes` says what was done, `findings` what is left.
#[utoipa::path(
    post, path = "/doctor/fix", operation_id = "System.DoctorFix", tag = "System",
    responses((status = 200, description = "what was fixed, and the findings after it", body = DoctorReport))
)]
pub(super) async fn fix(engine: Arc<Engine>) -> Response {
    reply::json(StatusCode::OK, &engine.doctor(true).await)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use crate::store::testdata::container;
    use crate::store::Store;

    const LISTING: &str = "zroot/kleene\tyes\t/zroot/kleene
zroot/kleene/image\tyes\t/zroot/kleene/image
zroot/kleene/container\tyes\t/zroot/kleene/container
zroot/kleene/container/c1c1c1aaaaaa\tyes\t/zroot/kleene/container/c1c1c1aaaaaa
zroot/kleene/volumes\tyes\t/zroot/kleene/volumes
";
    const POOL: &str = "ONLINE\t3.97G\t3.73G\t6%\n";
    const LEAK: &str = "zroot/kleene/container/1eaf00000000";

    #[tokio::test]
    async fn fix_destroys_a_leaked_container_dataset_and_checks_again() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|db| {
                db.insert_image(&crate::store::testdata::image(
                    "i1i1i1aaaaaa",
                    "base",
                    "latest",
                    "2024-01-01T00:00:00Z",
                ))?;
                let mut c = container("c1c1c1aaaaaa", None, "i1i1i1aaaaaa", "2024-01-02T00:00:00Z");
                c.dataset = "zroot/kleene/container/c1c1c1aaaaaa".into();
                c.public_ports = vec![];
                db.insert_container(&c)
            })
            .await
            .unwrap();
        let (engine, runner) = crate::engine::test_engine(store);
        // Names no daemon of the host uses: the checks read the host's cgroups and sysctls.
        let unique = crate::engine::ids::new_id();
        engine.set_doctor_settings(crate::doctor::Settings {
            cgroup_parent: format!("kleene-unit-{unique}"),
            nft_table: format!("kleene-unit-{unique}"),
            ..crate::doctor::Settings::defaults("zroot/kleene")
        });
        let routes = super::super::routes(engine);
        let leaked = format!("{LISTING}{LEAK}\tyes\t/{LEAK}\n");

        // GET /doctor: zfs list, zpool list, nft list tables.
        runner.push_ok(&leaked).push_ok(POOL).push_ok("");
        let res = warp::test::request().path("/doctor").reply(&routes).await;
        assert_eq!(res.status(), StatusCode::OK);
        let report: kleene_api::DoctorReport = serde_json::from_slice(res.body()).unwrap();
        assert!(report.daemon_running && !report.healthy);
        let leftover = report
            .findings
            .iter()
            .find(|f| f.check == "leftover.dataset")
            .unwrap();
        assert_eq!(
            leftover.fix.as_deref(),
            Some(format!("zfs destroy -r -f {LEAK}").as_str())
        );
        assert!(leftover.automatic);

        // POST /doctor/fix: the same looks, the destroy, the looks again without the dataset.
        runner.clear_calls();
        runner.push_ok(&leaked).push_ok(POOL).push_ok("");
        runner.push_ok("");
        runner.push_ok(LISTING).push_ok(POOL).push_ok("");
        let res = warp::test::request()
            .method("POST")
            .path("/doctor/fix")
            .reply(&routes)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let report: kleene_api::DoctorReport = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(report.fixes.len(), 1, "{report:#?}");
        assert_eq!(report.fixes[0].action, format!("zfs destroy -r -f {LEAK}"));
        assert_eq!(report.fixes[0].error, None);
        assert!(runner
            .lines()
            .iter()
            .any(|l| l.ends_with(&format!("destroy -r -f {LEAK}"))));
        assert!(report
            .findings
            .iter()
            .all(|f| f.check != "leftover.dataset" || f.status == kleene_api::FindingStatus::Ok));
    }
}
