/* transactional-livepatch Cockpit page: plain JS on cockpit.js.
 * Reads org.opensuse.TransactionalLivepatch1 on the system bus, changes through
 * Apply/Rollback, and follows the service's signals (no polling). */
(function () {
    "use strict";

    var NAME = "org.opensuse.TransactionalLivepatch1";
    var PATH = "/org/opensuse/TransactionalLivepatch1";
    var MANAGER = NAME + ".Manager";
    var TRANSACTION = NAME + ".Transaction";
    var ERR = NAME + ".Error.";

    /* What each typed error means to someone at the page. */
    var ERROR_TEXT = {
        NotAuthorized: "Not authorized: this change needs administrative access. Switch to administrative access and try again.",
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

    function showResult(ok, msg) {
        var el = $("tlp-result");
        el.hidden = false;
        el.className = "tlp-alert " + (ok ? "tlp-success" : "tlp-danger");
        text(el, msg);
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

    function badge(label, cls) {
        var s = document.createElement("span");
        s.className = "tlp-badge " + cls;
        s.textContent = label;
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
        b.className = "tlp-badge " + (d.in_sync ? "tlp-ok" : "tlp-warn");
        text(b, d.in_sync ? "In sync" : "Drift");
        var parts = [];
        if (d.only_live && d.only_live.length)
            parts.push("only in the running kernel: " + d.only_live.join(", "));
        if (d.only_boot && d.only_boot.length)
            parts.push("only at boot: " + d.only_boot.join(", "));
        text($("tlp-drift-detail"), parts.join("; "));
        text($("tlp-reboot"), s.reboot_pending ? "Reboot pending: the next boot uses snapshot " + s.default_snapshot : "No reboot pending");
        $("tlp-reboot").className = s.reboot_pending ? "tlp-warn-text" : "";

        var live = $("tlp-live").tBodies[0];
        clear(live);
        (s.live_livepatches || []).forEach(function (p) {
            row(live, [p.name, p.enabled ? "enabled" : "disabled", p.transition ? "in transition" : "done"]);
        });
        if (!live.rows.length)
            row(live, ["none", "", ""]);

        var boot = $("tlp-boot").tBodies[0];
        clear(boot);
        (s.default_livepatches || []).forEach(function (k) {
            (k.livepatches || []).forEach(function (p) {
                row(boot, [p.name, p.package || "", k.kernel_release]);
            });
        });
        if (!boot.rows.length)
            row(boot, ["none", "", ""]);

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
            text(el, where + ": " + describeError(ex.name, ex.message));
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

    function startProgress(title) {
        $("tlp-progress").hidden = false;
        $("tlp-result").hidden = true;
        text($("tlp-progress-title"), title);
        text($("tlp-progress-percent"), "");
        $("tlp-progress-bar").value = 0;
        clear($("tlp-steps"));
        setBusy(true);
    }

    function setBusy(b) {
        $("tlp-apply").disabled = b;
        $("tlp-rollback").disabled = b;
        $("tlp-confirm-yes").disabled = b;
    }

    function onTransactionSignal(path, iface, signal, args) {
        if (path !== running)
            return;
        var steps = $("tlp-steps");
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
            text($("tlp-progress-title"), args[0]);
            text($("tlp-progress-percent"), args[1] + "%");
            $("tlp-progress-bar").value = args[1];
        } else if (signal === "Finished") {
            running = null;
            setBusy(false);
            if (args[0]) {
                $("tlp-progress-bar").value = 100;
                text($("tlp-progress-percent"), "100%");
                showResult(true, "Finished successfully.");
            } else {
                showResult(false, describeError(args[1], args[2]));
            }
            refresh();
        }
    }

    function begin(title, method, args) {
        startProgress(title);
        client.call(PATH, MANAGER, method, args)
                .then(function (r) {
                    running = r[0];
                    $("tlp-progress").setAttribute("data-transaction", running);
                })
                .catch(function (ex) {
                    setBusy(false);
                    $("tlp-progress").hidden = true;
                    showResult(false, describeError(ex.name, ex.message));
                });
    }

    function apply() {
        var path = $("tlp-path").value.trim();
        if (!path) {
            showResult(false, "Enter the path of a livepatch RPM on the host.");
            return;
        }
        var opts = {};
        if ($("tlp-apply-bootonly").checked)
            opts["boot-only"] = cockpit.variant("b", true);
        begin("Applying " + path, "Apply", [path, opts]);
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

        $("tlp-apply").addEventListener("click", apply);
        $("tlp-rollback").addEventListener("click", askRollback);
        $("tlp-confirm-yes").addEventListener("click", rollback);
        $("tlp-confirm-no").addEventListener("click", function () { $("tlp-confirm").hidden = true; });
        refresh();
        document.body.setAttribute("data-loaded", "1");
    }

    document.addEventListener("DOMContentLoaded", init);
}());
