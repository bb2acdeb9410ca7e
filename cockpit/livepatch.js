/* transactional-livepatch Cockpit page: plain JS on cockpit.js.
 * Reads org.opensuse.TransactionalLivepatch1 on the system bus; a package is
 * first checked with Inspect (facts shown for confirmation), then applied with
 * Apply; Rollback asks for confirmation too. The Updates card asks the service
 * for newer livepatches in the configured repositories (CheckUpdates) and
 * installs them (Update). Follows the service's signals (no polling). An uploaded package goes to the service's SpoolDirectory through
 * Cockpit's superuser bridge (root-only there) and the service removes it after
 * its Apply; the page removes it when the user cancels. */
(function () {
    "use strict";

    var NAME = "org.opensuse.TransactionalLivepatch1";
    var PATH = "/org/opensuse/TransactionalLivepatch1";
    var MANAGER = NAME + ".Manager";
    var TRANSACTION = NAME + ".Transaction";
    var ERR = NAME + ".Error.";

    /* What each typed error means to someone at the page. */
    var ERROR_TEXT = {
        NotAuthorized: "Not authorized: this needs administrative access. Switch to administrative access and try again.",
        Busy: "Another livepatch transaction is running; wait for it to finish.",
        InvalidPackage: "The file is not a valid livepatch package.",
        NoLivepatch: "The package carries no livepatch module.",
        UnsafePath: "The path is not a safe regular file.",
        WrongKernel: "The package is built for a different kernel.",
        KernelUnsupported: "The running kernel cannot load livepatches.",
        InstallFailed: "Installing the package into the new snapshot failed.",
        InitrdFailed: "Building the initrd failed.",
        LoadFailed: "Loading the livepatch into the running kernel failed.",
        TransitionStalled: "The livepatch transition did not complete.",
        NoSpace: "No space left on the device.",
        InvalidTarget: "That snapshot cannot be used.",
        AlreadyApplied: "This livepatch is already applied.",
        BadSignature: "The package signature is not trusted.",
        UnloadFailed: "Unloading a livepatch from the running kernel failed.",
        RepositoryFailed: "The repository could not be read.",
        Usage: "The request was not valid."
    };

    var client = null;
    var status = null;
    var history = [];
    var running = null; /* object path of the transaction this page follows */
    /* The card that shows its progress: the ids of its elements begin with
     * this ("tlp" for apply and rollback, "tlp-up" for an update). */
    var target = "tlp";

    function $(id) { return document.getElementById(id); }

    function text(el, s) { el.textContent = s; }

    function shortName(errorName) {
        return errorName && errorName.indexOf(ERR) === 0 ? errorName.slice(ERR.length) : errorName;
    }

    /* "Kind: explanation (service message)" from a D-Bus error. */
    function describeError(name, message) {
        var kind = shortName(name || "");
        var plain = ERROR_TEXT[kind];
        var s = plain ? plain : "Failed";
        if (kind)
            s += " [" + kind + "]";
        if (message)
            s += " — " + message;
        return s;
    }

    function alertClass(kind) {
        var pf = { success: "pf-m-success", danger: "pf-m-danger", warning: "pf-m-warning", info: "pf-m-info" }[kind];
        return "pf-c-alert pf-m-inline " + pf + " tlp-alert tlp-" + kind;
    }

    function showResult(ok, msg, where) {
        var el = $((where || "tlp") + "-result");
        el.hidden = false;
        el.className = alertClass(ok ? "success" : "danger");
        clear(el);
        var p = document.createElement("p");
        p.className = "pf-c-alert__title";
        p.textContent = msg;
        el.appendChild(p);
    }

    function row(tbody, cells) {
        var tr = document.createElement("tr");
        cells.forEach(function (c) {
            var td = document.createElement("td");
            if (c instanceof Node)
                td.appendChild(c);
            else
                td.textContent = c === null || c === undefined ? "" : String(c);
            tr.appendChild(td);
        });
        tbody.appendChild(tr);
        return tr;
    }

    function clear(tbody) {
        while (tbody.firstChild)
            tbody.removeChild(tbody.firstChild);
    }

    /* A PatternFly label; cls is tlp-ok, tlp-warn or tlp-bad. */
    var LABEL_COLOUR = { "tlp-ok": "pf-m-green", "tlp-warn": "pf-m-orange", "tlp-bad": "pf-m-red" };
    function badge(label, cls) {
        var s = document.createElement("span");
        s.className = "pf-c-label " + LABEL_COLOUR[cls] + " " + cls;
        var c = document.createElement("span");
        c.className = "pf-c-label__content";
        c.textContent = label;
        s.appendChild(c);
        return s;
    }

    function cveList(cves) {
        var s = document.createElement("span");
        s.className = "tlp-cves";
        s.textContent = cves && cves.length ? cves.join(", ") : "—";
        return s;
    }

    function renderStatus(s) {
        status = s;
        text($("tlp-kernel"), s.running_kernel);
        text($("tlp-supported"), s.livepatch_supported ? "yes" : "no");
        text($("tlp-booted"), s.booted_snapshot === null || s.booted_snapshot === undefined ? "not a numbered snapshot" : String(s.booted_snapshot));
        text($("tlp-default"), String(s.default_snapshot));
        var d = s.drift || { in_sync: true, only_live: [], only_boot: [] };
        var b = $("tlp-drift");
        b.className = "pf-c-label " + (d.in_sync ? "pf-m-green tlp-ok" : "pf-m-orange tlp-warn");
        text($("tlp-drift-label"), d.in_sync ? "In sync" : "Drift");
        var parts = [];
        if (d.only_live && d.only_live.length)
            parts.push("only in the running kernel: " + d.only_live.join(", "));
        if (d.only_boot && d.only_boot.length)
            parts.push("only at boot: " + d.only_boot.join(", "));
        text($("tlp-drift-detail"), parts.join("; "));
        text($("tlp-reboot"), s.reboot_pending ? "Reboot pending: the next boot uses snapshot " + s.default_snapshot : "No reboot pending");
        $("tlp-reboot").className = s.reboot_pending ? "tlp-warn-text" : "";

        /* CVEs are known from the packages of the default snapshot; a live
         * patch shows them when the same module is there. */
        var cvesByName = {};
        (s.default_livepatches || []).forEach(function (k) {
            if (k.kernel_release === s.running_kernel)
                (k.livepatches || []).forEach(function (p) { cvesByName[p.name] = p.cves; });
        });
        var live = $("tlp-live").tBodies[0];
        clear(live);
        (s.live_livepatches || []).forEach(function (p) {
            row(live, [p.name, p.enabled ? "enabled" : "disabled", p.transition ? "in transition" : "done",
                cvesByName[p.name] ? cveList(cvesByName[p.name]) : "not in the default snapshot"])
                    .setAttribute("data-name", p.name);
        });
        if (!live.rows.length)
            row(live, ["none", "", "", ""]);

        var boot = $("tlp-boot").tBodies[0];
        clear(boot);
        (s.default_livepatches || []).forEach(function (k) {
            (k.livepatches || []).forEach(function (p) {
                row(boot, [p.name, p.package || "", k.kernel_release, cveList(p.cves)])
                        .setAttribute("data-name", p.name);
            });
        });
        if (!boot.rows.length)
            row(boot, ["none", "", "", ""]);

        var sel = $("tlp-rb-snapshot");
        var keep = sel.value;
        while (sel.firstChild)
            sel.removeChild(sel.firstChild);
        var prev = document.createElement("option");
        prev.value = "";
        prev.textContent = "The default before the last apply";
        sel.appendChild(prev);
        (s.snapshots || []).forEach(function (sn) {
            var o = document.createElement("option");
            o.value = String(sn.number);
            var tags = [];
            if (sn["default"]) tags.push("default");
            if (sn.booted) tags.push("booted");
            o.textContent = sn.number + (tags.length ? " (" + tags.join(", ") + ")" : "") + " " + (sn.description || "");
            sel.appendChild(o);
        });
        sel.value = keep;
    }

    function renderHistory(entries) {
        history = entries;
        var tbody = $("tlp-history").tBodies[0];
        clear(tbody);
        entries.slice().reverse().forEach(function (e) {
            var result = e.outcome === "committed" ? badge("committed", "tlp-ok")
                : e.outcome === "aborted" ? badge("aborted", "tlp-bad") : badge(e.outcome, "tlp-warn");
            row(tbody, [
                e.started,
                e.kind,
                e.package ? e.package.nevra : "",
                e.base + " → " + (e.target === null || e.target === undefined ? "–" : e.target),
                e.live ? "changed" : "boot only",
                result,
                e.error ? (e.error_kind ? "[" + e.error_kind + "] " : "") + e.error : ""
            ]).setAttribute("data-id", e.id);
        });
        if (!tbody.rows.length)
            row(tbody, ["no transactions yet", "", "", "", "", "", ""]);
    }

    function failed(where) {
        return function (ex) {
            var el = $("tlp-error");
            el.hidden = false;
            text(el, where + ": " + describeError(ex.name, ex.message || String(ex)));
        };
    }

    function refresh() {
        client.call(PATH, MANAGER, "Status", [])
                .then(function (r) { $("tlp-error").hidden = true; renderStatus(JSON.parse(r[0])); })
                .catch(failed("Reading the status"));
        client.call(PATH, MANAGER, "ListTransactions", [])
                .then(function (r) { renderHistory(JSON.parse(r[0])); })
                .catch(failed("Reading the history"));
    }

    function startProgress(title, where) {
        target = where;
        $("tlp-result").hidden = true;
        $("tlp-up-result").hidden = true;
        $("tlp-progress").hidden = true;
        $("tlp-up-progress").hidden = true;
        $(where + "-progress").hidden = false;
        text($(where + "-progress-title"), title);
        text($(where + "-progress-percent"), "");
        $(where + "-progress-bar").value = 0;
        clear($(where + "-steps"));
        setBusy(true);
    }

    function setBusy(b) {
        $("tlp-inspect").disabled = b;
        $("tlp-apply").disabled = b;
        $("tlp-rollback").disabled = b;
        $("tlp-confirm-yes").disabled = b;
        $("tlp-check").disabled = b;
        $("tlp-update").disabled = b;
    }

    function onTransactionSignal(path, iface, signal, args) {
        if (path !== running)
            return;
        var steps = $(target + "-steps");
        if (signal === "TaskBegin") {
            var li = document.createElement("li");
            li.className = "tlp-step-running";
            li.textContent = args[0];
            steps.appendChild(li);
        } else if (signal === "TaskEnd") {
            var open = steps.querySelectorAll(".tlp-step-running");
            if (open.length)
                open[open.length - 1].className = "tlp-step-done";
        } else if (signal === "Message") {
            var m = document.createElement("li");
            m.className = "tlp-step-message";
            m.textContent = args[0];
            steps.appendChild(m);
        } else if (signal === "PercentProgress") {
            text($(target + "-progress-title"), args[0]);
            text($(target + "-progress-percent"), args[1] + "%");
            $(target + "-progress-bar").value = args[1];
        } else if (signal === "Finished") {
            running = null;
            setBusy(false);
            if (args[0]) {
                $(target + "-progress-bar").value = 100;
                text($(target + "-progress-percent"), "100%");
                if (target === "tlp-up")
                    showUpdateReport(path);
                else
                    showResult(true, "Finished successfully.", target);
            } else {
                showResult(false, describeError(args[1], args[2]), target);
            }
            refresh();
        }
    }

    function begin(title, method, args, onRefused, where) {
        where = where || "tlp";
        startProgress(title, where);
        client.call(PATH, MANAGER, method, args)
                .then(function (r) {
                    running = r[0];
                    $(where + "-progress").setAttribute("data-transaction", running);
                })
                .catch(function (ex) {
                    if (onRefused)
                        onRefused();
                    setBusy(false);
                    $(where + "-progress").hidden = true;
                    showResult(false, describeError(ex.name, ex.message), where);
                });
    }

    /* Updates from the repositories: CheckUpdates's report (the JSON of
     * `check --json`), then Update of what it found. */
    var SEVERITY_COLOUR = { critical: "tlp-bad", important: "tlp-bad", moderate: "tlp-warn", low: "tlp-ok" };

    function advisoryList(advisories) {
        var box = document.createElement("span");
        if (!advisories || !advisories.length) {
            box.textContent = "—";
            return box;
        }
        advisories.forEach(function (a) {
            var line = document.createElement("span");
            line.className = "tlp-advisory";
            line.setAttribute("data-id", a.id);
            line.appendChild(document.createTextNode(a.id + " "));
            line.appendChild(badge(a.severity || "unspecified", SEVERITY_COLOUR[a.severity] || "tlp-warn"));
            line.appendChild(document.createTextNode(" " + a.category + (a.summary ? ": " + a.summary : "")));
            box.appendChild(line);
        });
        return box;
    }

    function renderUpdates(r) {
        var tbody = $("tlp-updates").tBodies[0];
        clear(tbody);
        (r.packages || []).forEach(function (p) {
            var available = p.available === null || p.available === undefined
                ? "not in the repositories"
                : p.available + (p.arch ? "." + p.arch : "");
            var avail = p.update_available ? badge(available, "tlp-warn") : document.createTextNode(available);
            row(tbody, [
                p.name,
                p.installed === null || p.installed === undefined ? "not installed" : p.installed,
                avail,
                p.repository || "",
                advisoryList(p.advisories),
                cveList(p.cves)
            ]).setAttribute("data-name", p.name);
        });
        if (!tbody.rows.length)
            row(tbody, ["no livepatch packages configured", "", "", "", "", ""]);
        var sum = $("tlp-up-summary");
        clear(sum);
        var t = document.createElement("p");
        t.className = "pf-c-alert__title";
        sum.appendChild(t);
        if (r.update_available) {
            sum.className = alertClass("warning");
            var cves = [];
            (r.packages || []).forEach(function (p) { (p.cves || []).forEach(function (c) { cves.push(c); }); });
            t.textContent = "An update is available for kernel " + r.kernel_release +
                (cves.length ? " (fixes " + cves.join(", ") + ")" : "") +
                ". Installing it makes a new snapshot that becomes the default.";
        } else {
            sum.className = alertClass("success");
            t.textContent = "Up to date: nothing newer for kernel " + r.kernel_release + " (default snapshot " + r.default_snapshot + ").";
        }
        $("tlp-up-install").hidden = !r.update_available;
        $("tlp-up-found").hidden = false;
    }

    function checkUpdates() {
        $("tlp-up-result").hidden = true;
        $("tlp-up-progress").hidden = true;
        setBusy(true);
        text($("tlp-check"), "Checking…");
        /* Refreshing slow repositories can take minutes: longer than D-Bus's default. */
        client.call(PATH, MANAGER, "CheckUpdates", [{}], { timeout: 600000 })
                .then(function (r) {
                    renderUpdates(JSON.parse(r[0]));
                })
                .catch(function (ex) {
                    $("tlp-up-found").hidden = true;
                    showResult(false, describeError(ex.name, ex.message), "tlp-up");
                })
                .then(function () {
                    text($("tlp-check"), "Check for updates");
                    setBusy(false);
                });
    }

    function installUpdate() {
        var opts = {};
        if ($("tlp-up-bootonly").checked)
            opts["boot-only"] = cockpit.variant("b", true);
        $("tlp-up-install").hidden = true;
        begin("Updating", "Update", [opts], null, "tlp-up");
    }

    /* What the finished Update did, from its Report (`update --json`). */
    function showUpdateReport(path) {
        /* The check before the update no longer holds: check again for newer ones. */
        $("tlp-up-found").hidden = true;
        client.call(path, "org.freedesktop.DBus.Properties", "Get", [TRANSACTION, "Report"])
                .then(function (r) {
                    var rep = JSON.parse(r[0].v);
                    var lines = (rep.applied || []).map(function (a) {
                        return (a.live ? "Applied " + a.package + ": live now, and snapshot " + a.new_snapshot + " boots with it."
                            : "Staged " + a.package + " for the next boot in snapshot " + a.new_snapshot + " (the new default).");
                    });
                    if (rep.result === "up-to-date")
                        lines.push("Already up to date: nothing was changed.");
                    showResult(true, lines.join(" ") || "Finished successfully.", "tlp-up");
                })
                .catch(function () { showResult(true, "Finished successfully.", "tlp-up"); });
    }

    /* The package being checked: its path on the host, whether the page put
     * it into the spool, and what Inspect said. */
    var pending = null;

    function spoolName() {
        var rnd = new Uint8Array(8);
        window.crypto.getRandomValues(rnd);
        var hex = Array.prototype.map.call(rnd, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
        return "upload-" + Date.now() + "-" + hex + ".rpm";
    }

    function readFile(file) {
        return new Promise(function (resolve, reject) {
            var r = new FileReader();
            r.onload = function () { resolve(new Uint8Array(r.result)); };
            r.onerror = function () { reject(r.error); };
            r.readAsArrayBuffer(file);
        });
    }

    /* Upload the chosen file into the service's spool, as root through
     * Cockpit's superuser bridge; resolves to its path on the host. */
    function upload(file) {
        return client.call(PATH, "org.freedesktop.DBus.Properties", "Get", [MANAGER, "SpoolDirectory"])
                .then(function (r) {
                    var path = r[0].v + "/" + spoolName();
                    return readFile(file).then(function (bytes) {
                        return cockpit.file(path, { binary: true, superuser: "require" }).replace(bytes)
                                .then(function () { return path; });
                    });
                });
    }

    function removeUpload(path) {
        return cockpit.file(path, { superuser: "require" }).replace(null)
                .catch(function () { /* the service removes stale uploads after a day */ });
    }

    function fact(dl, term, value) {
        var g = document.createElement("div");
        g.className = "pf-c-description-list__group";
        var dt = document.createElement("dt");
        dt.className = "pf-c-description-list__term";
        dt.textContent = term;
        var dd = document.createElement("dd");
        dd.className = "pf-c-description-list__description";
        if (value instanceof Node)
            dd.appendChild(value);
        else
            dd.textContent = value;
        g.appendChild(dt);
        g.appendChild(dd);
        dl.appendChild(g);
        return dd;
    }

    function showFacts(path, spooled, r) {
        var d = r.against_default || {};
        var dl = $("tlp-facts");
        clear(dl);
        fact(dl, "Package", r.nevra).id = "tlp-fact-nevra";
        fact(dl, "File", spooled ? path + " (uploaded; removed after the apply)" : path).id = "tlp-fact-file";
        fact(dl, "For kernel", r.kernel_release + (d.for_running_kernel ? " (the running kernel)" : " (not the running kernel " + d.running_kernel + ": boot only)")).id = "tlp-fact-kernel";
        fact(dl, "Livepatch modules", (r.modules || []).map(function (m) { return m.name; }).join(", ")).id = "tlp-fact-modules";
        fact(dl, "SHA-256", r.sha256).id = "tlp-fact-sha256";
        fact(dl, "Size", r.size + " bytes");
        fact(dl, "Signature", { verified: "verified: signed by a key the default snapshot trusts",
                                unsigned: "unsigned (the configuration allows unsigned packages)",
                                refused: "refused" }[d.signature] || String(d.signature)).id = "tlp-fact-signature";
        fact(dl, "Fixes", cveList(r.cves)).id = "tlp-fact-cves";
        var replaces = d.replaces_package ? r.name + " " + d.replaces_package : "nothing (new package)";
        if (d.replaces_livepatches && d.replaces_livepatches.length)
            replaces += "; livepatches " + d.replaces_livepatches.join(", ");
        fact(dl, "Replaces in snapshot " + d.default_snapshot, replaces).id = "tlp-fact-replaces";

        var v = $("tlp-verdict");
        clear(v);
        var p = document.createElement("p");
        p.className = "pf-c-alert__title";
        v.appendChild(p);
        var liveWanted = !$("tlp-apply-bootonly").checked;
        if (d.refusal) {
            v.className = alertClass("danger");
            p.textContent = "Apply would refuse it: " + describeError(ERR + d.refusal.kind, d.refusal.message);
            $("tlp-apply").hidden = true;
        } else if (liveWanted && !(d.for_running_kernel && d.livepatch_supported)) {
            v.className = alertClass("warning");
            p.textContent = d.livepatch_supported
                ? "It is not for the running kernel: choose boot only to stage it for the next boot."
                : "The running kernel cannot load livepatches: choose boot only to stage it for the next boot.";
            $("tlp-apply").hidden = true;
        } else {
            v.className = alertClass("info");
            p.textContent = "Apply " + r.nevra + " in a new snapshot that becomes the default" +
                (liveWanted ? ", and load it into the running kernel now?" : " for the next boot only (the running kernel is not changed)?");
            $("tlp-apply").hidden = false;
        }
        $("tlp-preflight").hidden = false;
    }

    function resetPreflight() {
        $("tlp-preflight").hidden = true;
        clear($("tlp-facts"));
        pending = null;
    }

    /* Step 1: the package to the service's Inspect; its facts for confirmation. */
    function inspect() {
        if (pending && pending.spooled)
            removeUpload(pending.path);
        resetPreflight();
        $("tlp-result").hidden = true;
        var fromUpload = $("tlp-source-upload").checked;
        var got;
        if (fromUpload) {
            var f = $("tlp-upload").files[0];
            if (!f) {
                showResult(false, "Choose a livepatch RPM to upload.");
                return;
            }
            got = upload(f).then(function (path) { return { path: path, spooled: true }; });
        } else {
            var path = $("tlp-path").value.trim();
            if (!path) {
                showResult(false, "Enter the path of a livepatch RPM on the host.");
                return;
            }
            got = Promise.resolve({ path: path, spooled: false });
        }
        setBusy(true);
        got.then(function (p) {
            pending = p;
            return client.call(PATH, MANAGER, "Inspect", [p.path, {}]).then(function (r) {
                setBusy(false);
                pending.facts = JSON.parse(r[0]);
                showFacts(p.path, p.spooled, pending.facts);
            });
        }).catch(function (ex) {
            setBusy(false);
            if (pending && pending.spooled)
                removeUpload(pending.path);
            pending = null;
            if (ex.problem && !ex.name)
                showResult(false, "Uploading needs administrative access (" + ex.problem + (ex.message ? ": " + ex.message : "") + ")");
            else
                showResult(false, describeError(ex.name, ex.message));
        });
    }

    function cancelInspect() {
        if (pending && pending.spooled)
            removeUpload(pending.path);
        resetPreflight();
    }

    /* Step 2, confirmed: Apply what was inspected. */
    function apply() {
        if (!pending)
            return;
        var opts = {};
        if ($("tlp-apply-bootonly").checked)
            opts["boot-only"] = cockpit.variant("b", true);
        var p = pending;
        $("tlp-preflight").hidden = true;
        pending = null;
        begin("Applying " + p.facts.nevra, "Apply", [p.path, opts], function () {
            /* Refused before a transaction began: the service never owned it. */
            if (p.spooled)
                removeUpload(p.path);
        });
    }

    function rollbackMode() {
        return $("tlp-rb-live").checked ? "live" : "boot";
    }

    function askRollback() {
        var target = $("tlp-rb-snapshot").value;
        var what = target ? "snapshot " + target : "the snapshot that was the default before the last apply";
        if (!target) {
            var applies = history.filter(function (e) { return e.kind === "apply" && e.outcome === "committed"; });
            if (applies.length)
                what += " (snapshot " + applies[applies.length - 1].base + ")";
        }
        var s = "The next boot will use " + what;
        if (status)
            s += " instead of snapshot " + status.default_snapshot;
        if (rollbackMode() === "live")
            s += ", and the running kernel's livepatches will be changed to match it now.";
        else
            s += ". The running kernel is not changed (boot only).";
        text($("tlp-confirm-text"), s);
        $("tlp-confirm").hidden = false;
    }

    function rollback() {
        $("tlp-confirm").hidden = true;
        var opts = {};
        var target = $("tlp-rb-snapshot").value;
        if (target)
            opts.snapshot = cockpit.variant("u", parseInt(target, 10));
        if (rollbackMode() === "boot")
            opts["boot-only"] = cockpit.variant("b", true);
        begin("Rolling back", "Rollback", [opts]);
    }

    function init() {
        client = cockpit.dbus(NAME, { bus: "system", superuser: "try" });
        client.subscribe({ interface: TRANSACTION }, onTransactionSignal);
        client.subscribe({ path: PATH, interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged" },
                         function () { refresh(); });

        var perm = cockpit.permission({ admin: true });
        var showAccess = function () { $("tlp-access").hidden = perm.allowed !== false; };
        perm.addEventListener("changed", showAccess);
        showAccess();

        $("tlp-check").addEventListener("click", checkUpdates);
        $("tlp-update").addEventListener("click", installUpdate);
        $("tlp-inspect").addEventListener("click", inspect);
        $("tlp-inspect-cancel").addEventListener("click", cancelInspect);
        $("tlp-apply").addEventListener("click", apply);
        $("tlp-upload").addEventListener("change", function () { $("tlp-source-upload").checked = true; });
        $("tlp-path").addEventListener("input", function () { $("tlp-source-path").checked = true; });
        $("tlp-rollback").addEventListener("click", askRollback);
        $("tlp-confirm-yes").addEventListener("click", rollback);
        $("tlp-confirm-no").addEventListener("click", function () { $("tlp-confirm").hidden = true; });
        refresh();
        document.body.setAttribute("data-loaded", "1");
    }

    document.addEventListener("DOMContentLoaded", init);
}());
