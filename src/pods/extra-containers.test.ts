import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkExtraAgentContainersPolicy,
  type ExtraAgentContainer,
  type ExtraAgentContainersErrorCode,
  effectiveExtraAgentContainersPolicy,
  evaluateExtraAgentContainers,
  extraAgentContainersChecker,
  extraAgentContainersKey,
  extraContainerSpecs,
  imageMatchesPattern,
  isContainerName,
  isImageReference,
  MAX_VALUE_LENGTH,
  type PolicyViolationCode,
  parseExtraAgentContainers,
  parseExtraAgentContainersPolicy,
  templateContainerNames,
} from "./extra-containers.ts";

type Plain = Omit<ExtraAgentContainer, "form">;

function containersOf(value: string, reservedNames: string[] = []): ExtraAgentContainer[] {
  const r = parseExtraAgentContainers(value, { reservedNames });
  if (!r.ok) throw new Error(`${value}: ${r.errors.map((e) => e.message).join("; ")}`);
  return [...r.value.containers];
}

const plain = (cs: ExtraAgentContainer[]): Plain[] => cs.map(({ form: _form, ...rest }) => rest);

describe("parseExtraAgentContainers: valid values", () => {
  const cases: [string, string, Plain[]][] = [
    [
      "key=value, all fields",
      "name=c,image=i,cpu=250m,memory=64Mi",
      [{ name: "c", image: "i", cpu: "250m", memory: "64Mi" }],
    ],
    [
      "key=value, two entries, second without resources",
      "name=c,image=i,cpu=250m,memory=64Mi||name=d,image=j",
      [
        { name: "c", image: "i", cpu: "250m", memory: "64Mi" },
        { name: "d", image: "j" },
      ],
    ],
    [
      "key=value, keys in any order",
      "image=repo/x:1,memory=1Gi,name=x",
      [{ name: "x", image: "repo/x:1", memory: "1Gi" }],
    ],
    ["key=value, only cpu", "name=c,image=i,cpu=1", [{ name: "c", image: "i", cpu: "1" }]],
    [
      "positional, all fields (the original README's example)",
      "containername,someimage:sometag,250m,64Mi||othercontainername,someotherimage:sometag,500m,128Mi",
      [
        { name: "containername", image: "someimage:sometag", cpu: "250m", memory: "64Mi" },
        { name: "othercontainername", image: "someotherimage:sometag", cpu: "500m", memory: "128Mi" },
      ],
    ],
    ["positional, name and image", "c,image:tag", [{ name: "c", image: "image:tag" }]],
    ["positional, cpu only", "c,image:tag,250m", [{ name: "c", image: "image:tag", cpu: "250m" }]],
    ["positional, empty cpu, memory given", "c,image:tag,,64Mi", [{ name: "c", image: "image:tag", memory: "64Mi" }]],
    [
      "both forms in one value",
      "c,image:tag,250m,64Mi||name=d,image=image2",
      [
        { name: "c", image: "image:tag", cpu: "250m", memory: "64Mi" },
        { name: "d", image: "image2" },
      ],
    ],
    [
      "whitespace around separators",
      "  name = c , image = i , cpu = 250m  ||  d , image2 , 1 , 1Gi ",
      [
        { name: "c", image: "i", cpu: "250m" },
        { name: "d", image: "image2", cpu: "1", memory: "1Gi" },
      ],
    ],
    [
      "registry with port, digest",
      "name=c,image=registry.example.com:5000/team/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      [
        {
          name: "c",
          image:
            "registry.example.com:5000/team/tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        },
      ],
    ],
    ["63-character name", `${"a".repeat(63)},img`, [{ name: "a".repeat(63), image: "img" }]],
  ];
  for (const [title, value, want] of cases) {
    test(title, () => assert.deepEqual(plain(containersOf(value)), want));
  }

  test("reports the form of each entry", () => {
    assert.deepEqual(
      containersOf("c,img||name=d,image=img").map((c) => c.form),
      ["positional", "key-value"],
    );
  });

  test("keeps the value and gives a stable key", () => {
    const value = "name=c,image=i";
    const r = parseExtraAgentContainers(value);
    assert.ok(r.ok);
    if (!r.ok) return;
    assert.equal(r.value.value, value);
    assert.equal(r.value.key, extraAgentContainersKey(value));
    assert.match(r.value.key, /^[0-9a-f]{16}$/);
    assert.equal(extraAgentContainersKey(value), extraAgentContainersKey("name=c,image=i"));
    assert.notEqual(extraAgentContainersKey(value), extraAgentContainersKey("c,i"));
  });
});

describe("parseExtraAgentContainers: malformed values", () => {
  const cases: [string, string, ExtraAgentContainersErrorCode, RegExp, string[]?][] = [
    ["empty value", "", "empty-value", /empty/],
    ["whitespace only", "   ", "empty-value", /empty/],
    ["too long", `c,${"a".repeat(MAX_VALUE_LENGTH)}`, "value-too-long", /at most 1023/],
    ["trailing separator", "c,img||", "empty-entry", /entry 2 of 2 is empty/],
    ["leading separator", "||c,img", "empty-entry", /entry 1 of 2 is empty/],
    ["blank entry in the middle", "c,img|| ||d,img", "empty-entry", /entry 2 of 3/],
    ["single pipe", "c,img|d,img", "bad-separator", /single "\|"/],
    ["triple pipe", "c,img|||d,img", "bad-separator", /entry 2/],
    [
      "key=value attribute without =",
      "name=c,image=i,250m",
      "malformed-attribute",
      /attribute 3 "250m" is not key=value/,
    ],
    ["empty key", "name=c,=i", "malformed-attribute", /has no key/],
    ["trailing comma in key=value form", "name=c,image=i,", "malformed-attribute", /attribute 3/],
    ["unknown key", "name=c,image=i,gpu=1", "unknown-key", /unknown key "gpu"/],
    ["unknown key in another case", "name=c,Image=i", "unknown-key", /did you mean image/],
    ["duplicate key", "name=c,image=i,image=j", "duplicate-key", /image is given more than once/],
    ["positional, too many fields", "c,img,1,1Gi,extra", "too-many-fields", /5 fields/],
    ["positional entry with a key=value field", "c,img,cpu=1", "mixed-form", /field 3 "cpu=1"/],
    ["key=value without name", "image=i", "missing-name", /name is missing/],
    ["key=value with an empty name", "name=,image=i", "missing-name", /name is missing/],
    ["positional with an empty name", ",img", "missing-name", /name is missing/],
    ["upper-case name", "name=Web,image=i", "invalid-name", /"Web" is not a valid container name/],
    ["name with underscore", "my_tool,img", "invalid-name", /not a valid container name/],
    ["name ending in a dash", "tool-,img", "invalid-name", /not a valid container name/],
    ["64-character name", `${"a".repeat(64)},img`, "invalid-name", /at most 63/],
    ["duplicate name", "c,img||name=c,image=other", "duplicate-name", /entry 2 \(container "c"\).*entry 1/],
    ["name of a template container", "agent,img", "name-clash", /already has a container named "agent"/, ["agent"]],
    ["name of a template init container", "name=init,image=i", "name-clash", /"init"/, ["agent", "init"]],
    ["key=value without image", "name=c", "missing-image", /container "c"\): the image is missing/],
    ["key=value with an empty image", "name=c,image=", "missing-image", /image is missing/],
    ["positional without image", "c", "missing-image", /image is missing/],
    ["positional with an empty image", "c,,1", "missing-image", /image is missing/],
    ["image with a space", "name=c,image=my image", "invalid-image", /"my image" is not an image reference/],
    ["image with upper-case repository", "c,Repo/Tool:1", "invalid-image", /not an image reference/],
    ["image with a bad tag", "c,img:-bad", "invalid-image", /not an image reference/],
    ["image with a short digest", "c,img@sha256:abc", "invalid-image", /not an image reference/],
    ["bad cpu", "name=c,image=i,cpu=abc", "bad-quantity", /container "c"\): cpu "abc" is not a quantity/],
    ["bad memory suffix", "c,img,250m,64MB", "bad-quantity", /memory "64MB" has an unknown suffix "MB"/],
    ["lower-case binary suffix", "c,img,1,64mi", "bad-quantity", /memory "64mi"/],
    ["negative cpu", "c,img,-1", "bad-quantity", /cpu "-1" must be greater than zero/],
    ["zero memory", "name=c,image=i,memory=0Mi", "bad-quantity", /greater than zero/],
    ["empty cpu in key=value form", "name=c,image=i,cpu=", "bad-quantity", /cpu is empty/],
  ];
  for (const [title, value, code, message, reserved] of cases) {
    test(title, () => {
      const r = parseExtraAgentContainers(value, { reservedNames: reserved ?? [] });
      assert.equal(r.ok, false, "must be refused");
      if (r.ok) return;
      const error = r.errors.find((e) => e.code === code);
      assert.ok(error, `expected a ${code} error, got ${JSON.stringify(r.errors)}`);
      assert.match(error.message, message);
    });
  }

  test("reports every problem, each naming its entry", () => {
    const r = parseExtraAgentContainers("name=c,image=i,cpu=x||name=c,image=i||Bad,img");
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.errors.map((e) => [e.code, e.entry, e.container]),
      [
        ["bad-quantity", 1, "c"],
        ["duplicate-name", 2, "c"],
        ["invalid-name", 3, "Bad"],
      ],
    );
  });

  test("a value whose entries are fine on their own may still clash", () => {
    assert.equal(parseExtraAgentContainers("a,img||b,img").ok, true);
    assert.equal(parseExtraAgentContainers("a,img||b,img", { reservedNames: ["b"] }).ok, false);
  });
});

describe("image references and names", () => {
  const images: [string, boolean][] = [
    ["nginx", true],
    ["nginx:1.27", true],
    ["library/nginx:latest", true],
    ["docker.io/library/nginx:1.27-alpine", true],
    ["localhost:5000/tool", true],
    ["ghcr.io/org/some_tool__x/sub:v1.2.3_rc", true],
    ["[::1]:5000/tool:1", true],
    ["Nginx", false],
    ["nginx:", false],
    [":tag", false],
    ["/nginx", false],
    ["nginx//x", false],
    ["nginx:a:b", false],
    [`nginx:${"a".repeat(129)}`, false],
    [`${"a".repeat(256)}:1`, false],
  ];
  for (const [image, ok] of images)
    test(`image ${image.slice(0, 40)}`, () => assert.equal(isImageReference(image), ok));
  test("container names", () => {
    assert.equal(isContainerName("a"), true);
    assert.equal(isContainerName("a-1"), true);
    assert.equal(isContainerName("-a"), false);
    assert.equal(isContainerName("a.b"), false);
    assert.equal(isContainerName(""), false);
  });
});

describe("image patterns", () => {
  const cases: [string, string, boolean][] = [
    ["nginx:1", "nginx:*", true],
    ["nginx:1", "nginx:1", true],
    ["nginx:1", "nginx", false],
    ["registry.example.com/team/tool:1", "registry.example.com/*", false],
    ["registry.example.com/team/tool:1", "registry.example.com/**", true],
    ["registry.example.com/team/tool:1", "registry.example.com/*/*", true],
    ["registry.example.com/team/tool:1", "registry.example.com/*/tool:*", true],
    ["registry.example.com/team/tool:1", "registry.example.com/other/*", false],
    ["evil.example.com/registry.example.com/x", "registry.example.com/**", false],
    ["registryXexample.com/x", "registry.example.com/**", false],
    ["a+b/c", "a+b/*", true],
    ["repo/x@sha256:abc", "repo/**", true],
    ["anything/at/all", "**", true],
  ];
  for (const [image, pattern, want] of cases) {
    test(`${image} ~ ${pattern}`, () => assert.equal(imageMatchesPattern(image, pattern), want));
  }
});

describe("checkExtraAgentContainersPolicy", () => {
  const two = containersOf("name=c,image=registry.example.com/a:1,cpu=500m,memory=256Mi||name=d,image=docker.io/x:2");

  test("no policy: anything goes", () => assert.deepEqual(checkExtraAgentContainersPolicy(two, undefined), []));
  test("an empty policy: anything goes", () => assert.deepEqual(checkExtraAgentContainersPolicy(two, {}), []));

  const cases: [
    string,
    Parameters<typeof checkExtraAgentContainersPolicy>[1],
    [PolicyViolationCode, string?][],
    RegExp?,
  ][] = [
    ["maxContainers reached exactly", { maxContainers: 2 }, []],
    ["maxContainers exceeded", { maxContainers: 1 }, [["max-containers"]], /2 extra containers asked for, at most 1/],
    ["maxContainers 0 refuses any", { maxContainers: 0 }, [["max-containers"]], /allows none/],
    [
      "allowed images: one of two matches",
      { allowedImages: ["registry.example.com/**"] },
      [["image-not-allowed", "d"]],
    ],
    [
      "allowed images: the message names container, image and patterns",
      { allowedImages: ["registry.example.com/**", "ghcr.io/*/*"] },
      [["image-not-allowed", "d"]],
      /container "d": image "docker.io\/x:2" matches none of spec.extraAgentContainers.allowedImages \(registry.example.com\/\*\*, ghcr.io\/\*\/\*\)/,
    ],
    ["allowed images: all match", { allowedImages: ["registry.example.com/**", "docker.io/*"] }, []],
    [
      "cpu above the maximum; d gives none",
      { maxCpuPerContainer: "250m" },
      [
        ["cpu-above-limit", "c"],
        ["cpu-required", "d"],
      ],
      /container "c": cpu 500m is above the maximum 250m \(spec.extraAgentContainers.maxCpuPerContainer\)/,
    ],
    [
      "cpu at the maximum, integer policy",
      { maxCpuPerContainer: 1 },
      [["cpu-required", "d"]],
      /container "d": gives no cpu, but spec.extraAgentContainers.maxCpuPerContainer limits it to 1/,
    ],
    ["cpu compared across units", { maxCpuPerContainer: "0.5" }, [["cpu-required", "d"]]],
    [
      "memory above the maximum",
      { maxMemoryPerContainer: "128Mi" },
      [
        ["memory-above-limit", "c"],
        ["memory-required", "d"],
      ],
      /container "c": memory 256Mi is above the maximum 128Mi/,
    ],
    ["memory compared across units", { maxMemoryPerContainer: "268435456" }, [["memory-required", "d"]]],
    ["memory 1G is below 256Mi? no: 1G is more", { maxMemoryPerContainer: "1G" }, [["memory-required", "d"]]],
    [
      "an unreadable policy quantity",
      { maxCpuPerContainer: "lots" },
      [["invalid-policy"]],
      /maxCpuPerContainer "lots" is not a quantity/,
    ],
  ];
  for (const [title, policy, want, message] of cases) {
    test(title, () => {
      const got = checkExtraAgentContainersPolicy(two, policy);
      assert.deepEqual(
        got.map((v) => (v.container === undefined ? [v.code] : [v.code, v.container])),
        want,
      );
      if (message)
        assert.ok(
          got.some((v) => message.test(v.message)),
          got.map((v) => v.message).join("\n"),
        );
    });
  }
});

describe("evaluateExtraAgentContainers and the plan checker", () => {
  test("valid and within policy", () => {
    const v = evaluateExtraAgentContainers("c,registry.example.com/a:1,100m,64Mi", {
      policy: { allowedImages: ["registry.example.com/**"], maxContainers: 1, maxCpuPerContainer: "1" },
      reservedNames: ["agent"],
    });
    assert.ok(v.ok);
  });
  test("malformed: reason invalid, one message with every problem", () => {
    const v = evaluateExtraAgentContainers("c,img,abc||c,img");
    assert.equal(v.ok, false);
    if (v.ok) return;
    assert.equal(v.reason, "invalid");
    assert.match(v.message, /^ExtraAgentContainers "c,img,abc\|\|c,img" is invalid: .*cpu "abc".*; .*already used/);
  });
  test("outside the policy: reason refused", () => {
    const v = evaluateExtraAgentContainers("c,img", { policy: { maxContainers: 0 } });
    assert.equal(v.ok, false);
    if (v.ok) return;
    assert.equal(v.reason, "refused");
    assert.match(v.message, /is refused by the resource's policy: 1 extra container\(s\) asked for/);
  });
  test("a clash with the template is invalid, not refused", () => {
    const v = evaluateExtraAgentContainers("agent,img", { reservedNames: ["agent"] });
    assert.equal(v.ok ? "ok" : v.reason, "invalid");
  });
  test("extraAgentContainersChecker returns a message only when refused", () => {
    const check = extraAgentContainersChecker({ allowedImages: ["ok/*"] });
    assert.equal(check("c,ok/img"), undefined);
    assert.match(check("c,bad/img") ?? "", /matches none/);
    assert.match(check("c") ?? "", /image is missing/);
    assert.equal(extraAgentContainersChecker(undefined)("c,any/img"), undefined);
  });
});

describe("the operator's default policy", () => {
  test("effectiveExtraAgentContainersPolicy: the resource's (even empty), else the operator's, else none", () => {
    const operator = { maxContainers: 1 };
    assert.deepEqual(effectiveExtraAgentContainersPolicy({ maxContainers: 2 }, operator), {
      policy: { maxContainers: 2 },
      policySource: "resource",
    });
    assert.deepEqual(effectiveExtraAgentContainersPolicy({}, operator), { policy: {}, policySource: "resource" });
    assert.deepEqual(effectiveExtraAgentContainersPolicy(undefined, operator), {
      policy: operator,
      policySource: "operator",
    });
    assert.deepEqual(effectiveExtraAgentContainersPolicy(undefined, undefined), {});
  });

  test("messages name the operator's flag, not the resource's field", () => {
    const check = extraAgentContainersChecker({ allowedImages: ["ok/*"], maxContainers: 0 }, "operator");
    const message = check("c,bad/img") ?? "";
    assert.match(message, /is refused by the operator's default policy/);
    assert.match(
      message,
      /the operator allows by default none \(maxContainers of the operator's --extra-agent-containers-policy is 0\)/,
    );
    assert.match(message, /allowedImages of the operator's --extra-agent-containers-policy/);
    assert.doesNotMatch(message, /spec\.extraAgentContainers/);
  });

  const cases: [string, string, RegExp | Record<string, unknown>][] = [
    [
      "a full policy",
      '{"allowedImages":["docker.io/library/*"],"maxContainers":2,"maxCpuPerContainer":"1","maxMemoryPerContainer":"2Gi"}',
      {
        allowedImages: ["docker.io/library/*"],
        maxContainers: 2,
        maxCpuPerContainer: "1",
        maxMemoryPerContainer: "2Gi",
      },
    ],
    ["an empty policy", "{}", {}],
    ["a number as a quantity", '{"maxCpuPerContainer":2}', { maxCpuPerContainer: 2 }],
    ["not JSON", "{allowedImages", /not JSON/],
    ["a list", "[]", /must be a JSON object/],
    ["an unknown field", '{"allowedImage":["x"]}', /allowedImage/],
    ["a negative count", '{"maxContainers":-1}', /maxContainers/],
    ["a bad quantity", '{"maxMemoryPerContainer":"lots"}', /maxMemoryPerContainer/],
    ["an empty image list", '{"allowedImages":[]}', /allowedImages/],
  ];
  for (const [name, json, expected] of cases) {
    test(`parseExtraAgentContainersPolicy: ${name}`, () => {
      const r = parseExtraAgentContainersPolicy(json);
      if (expected instanceof RegExp) {
        assert.equal(r.ok, false);
        if (!r.ok) assert.match(r.errors.join("; "), expected);
      } else {
        assert.deepEqual(r, { ok: true, value: expected });
      }
    });
  }
});

describe("extraContainerSpecs", () => {
  test("requests = limits, the agent's mounts at the same paths, the image's own entrypoint", () => {
    const agent = {
      volumeMounts: [
        { name: "workspace", mountPath: "/azp/_work" },
        { name: "tools", mountPath: "/tools", readOnly: true, subPath: "bin", mountPropagation: "Bidirectional" },
      ],
    };
    const specs = extraContainerSpecs(containersOf("c,img,250m,64Mi||d,img2||e,img3,,1Gi"), agent);
    assert.deepEqual(specs, [
      {
        name: "c",
        image: "img",
        resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { cpu: "250m", memory: "64Mi" } },
        volumeMounts: [
          { name: "workspace", mountPath: "/azp/_work" },
          { name: "tools", mountPath: "/tools", readOnly: true, subPath: "bin" },
        ],
      },
      {
        name: "d",
        image: "img2",
        volumeMounts: [
          { name: "workspace", mountPath: "/azp/_work" },
          { name: "tools", mountPath: "/tools", readOnly: true, subPath: "bin" },
        ],
      },
      {
        name: "e",
        image: "img3",
        resources: { requests: { memory: "1Gi" }, limits: { memory: "1Gi" } },
        volumeMounts: [
          { name: "workspace", mountPath: "/azp/_work" },
          { name: "tools", mountPath: "/tools", readOnly: true, subPath: "bin" },
        ],
      },
    ]);
    for (const s of specs) {
      assert.equal(s.command, undefined);
      assert.equal(s.args, undefined);
    }
    // The specs do not share objects with the agent's mounts.
    (specs[0]?.volumeMounts?.[0] as { mountPath: string }).mountPath = "/changed";
    assert.equal(agent.volumeMounts[0]?.mountPath, "/azp/_work");
  });
  test("a copy of the agent container's security context", () => {
    const securityContext = { runAsNonRoot: true, capabilities: { drop: ["ALL"] }, allowPrivilegeEscalation: false };
    const [spec] = extraContainerSpecs(containersOf("c,img"), { securityContext });
    assert.deepEqual(spec?.securityContext, securityContext);
    assert.notEqual(spec?.securityContext, securityContext);
  });
  test("no mounts when the agent has none", () => {
    assert.deepEqual(extraContainerSpecs(containersOf("c,img"), {}), [{ name: "c", image: "img" }]);
  });
  test("templateContainerNames lists containers and init containers", () => {
    assert.deepEqual(
      templateContainerNames({
        containers: [{ name: "agent" }, { name: "buildkit" }],
        initContainers: [{ name: "setup" }],
      }),
      ["agent", "buildkit", "setup"],
    );
  });
});
