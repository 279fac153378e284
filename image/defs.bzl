"""opt_binaries: the airmesh binaries as they go into the appliance image, built with
-c opt and without the sanitizer flags that `make test` turns on (--config=asan), whatever the
command line says. A configuration transition does this inside the same Bazel invocation, so the
image test (run by `bazel test --config=asan //tests/...`) gets release binaries without a nested
Bazel (which would wait forever on the outer one's lock)."""

def _strip(opts):
    """Drop what --config=asan adds (see .bazelrc): sanitizers, frame pointers, -O1, and the
    -U_FORTIFY_SOURCE it appends after the base -D_FORTIFY_SOURCE=2 (so the image keeps FORTIFY)."""
    out = [o for o in opts if "sanitize" not in o and o not in ("-fno-omit-frame-pointer", "-O1")]
    last_d = -1
    for i, o in enumerate(out):
        if o.startswith("-D_FORTIFY_SOURCE"):
            last_d = i
    return [o for i, o in enumerate(out) if not (o == "-U_FORTIFY_SOURCE" and i > last_d)]

def _release_impl(settings, attr):
    strip = _strip
    return {
        "//command_line_option:compilation_mode": "opt",
        "//command_line_option:copt": strip(settings["//command_line_option:copt"]),
        "//command_line_option:linkopt": strip(settings["//command_line_option:linkopt"]),
    }

_release = transition(
    implementation = _release_impl,
    inputs = ["//command_line_option:copt", "//command_line_option:linkopt"],
    outputs = [
        "//command_line_option:compilation_mode",
        "//command_line_option:copt",
        "//command_line_option:linkopt",
    ],
)

def _opt_binaries_impl(ctx):
    out = []
    for dep in ctx.attr.srcs:
        for f in dep[DefaultInfo].files.to_list():
            link = ctx.actions.declare_file(ctx.label.name + "/" + f.basename)
            ctx.actions.symlink(output = link, target_file = f)
            out.append(link)
    return [DefaultInfo(files = depset(out), runfiles = ctx.runfiles(files = out))]

opt_binaries = rule(
    implementation = _opt_binaries_impl,
    attrs = {
        "srcs": attr.label_list(cfg = _release),
        "_whitelist_function_transition": attr.label(
            default = "@bazel_tools//tools/whitelists/function_transition_whitelist",
        ),
    },
)
