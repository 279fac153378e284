"""integration_test: one Python test file run against real airmeshd / airmeshctl (and, with
runner = True, airmesh-runner) binaries, passed as arguments the way tests/integration/harness.py
expects them: AIRMESHD AIRMESHCTL UI_DIR [AIRMESH_RUNNER]."""

def integration_test(name, runner = False, pods = False, data = [], env = {}):
    """pods = True: the test runs real pods (namespaces, overlay mounts, cgroups), so it runs
    outside Bazel's sandbox and is tagged `external`: what it checks depends on the host (kernel,
    cgroups, uid), which is not in Bazel's cache key, so its result is never taken from the cache.
    Otherwise it gets its own network namespace with only loopback.

    The test file's harness (harness.py) writes one JUnit <testcase> per test method to
    $XML_OUTPUT_FILE and fails a test whose airmeshd/runner exits badly or prints a sanitizer
    report: nothing to do here for that."""
    args = [
        "$(location //appliance:airmeshd)",
        "$(location //appliance:airmeshctl)",
        "ui/static",
    ]
    deps = ["//appliance:airmeshd", "//appliance:airmeshctl", "//ui:static"]
    if runner:
        args.append("$(location //runner:airmesh-runner)")
        deps.append("//runner:airmesh-runner")
    native.sh_test(
        name = name,
        size = "large",
        srcs = [name + ".py"],
        args = args,
        data = ["harness.py"] + deps + data,
        env = env,
        local = pods,
        tags = ["external"] if pods else ["block-network"],
    )
