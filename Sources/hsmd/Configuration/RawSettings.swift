import Foundation
import Yams

/// A setting's value as one source gave it, with where it came from for error messages.
struct RawSetting {
    enum Value {
        case scalar(String)
        case list([String])
    }

    let value: Value
    /// `--tls-port`, `HSMD_TLS_PORT` or `/etc/hsmd/hsmd.yaml:12`.
    let origin: String
}

/// The settings hsmd knows, by the name they have in every source: `tls-port` is the flag
/// `--tls-port`, the variable `HSMD_TLS_PORT` and the key `tls-port:` in the file.
enum SettingKind {
    case string, integer, boolean, list
}

struct InvalidConfiguration: Error, CustomStringConvertible {
    let description: String
}

/// The configuration file: a YAML mapping from setting names to values. Keys hsmd does not know
/// are refused with their line, so a typo cannot silently leave a default in force.
enum ConfigurationFile {
    static func read(_ path: String, known: [String: SettingKind]) throws -> [String: RawSetting] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw InvalidConfiguration(description: "cannot read the configuration file \(path): \(error.localizedDescription)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw InvalidConfiguration(description: "\(path): not valid YAML: \(error)")
        }
        guard let root else { return [:] }
        guard let mapping = root.mapping else {
            throw InvalidConfiguration(description: "\(path):\(line(root)): the file must be a mapping of setting: value")
        }
        var settings: [String: RawSetting] = [:]
        for (keyNode, valueNode) in mapping {
            let origin = "\(path):\(line(keyNode))"
            guard let name = keyNode.string, let kind = known[name] else {
                throw InvalidConfiguration(description: "\(origin): unknown setting '\(keyNode.string ?? "?")'; known settings: \(known.keys.sorted().joined(separator: ", "))")
            }
            guard settings[name] == nil else { throw InvalidConfiguration(description: "\(origin): '\(name)' is set twice") }
            // `name: ~` (YAML's null) leaves the setting to the defaults, as --check-config prints unset ones.
            if valueNode.null != nil { continue }
            settings[name] = RawSetting(value: try value(valueNode, kind: kind, name: name, origin: origin), origin: origin)
        }
        return settings
    }

    private static func value(_ node: Node, kind: SettingKind, name: String, origin: String) throws -> RawSetting.Value {
        switch (kind, node) {
        case (.list, .sequence(let items)):
            return .list(try items.map { item in
                guard let text = item.scalar?.string else {
                    throw InvalidConfiguration(description: "\(origin): every item of '\(name)' must be a plain value")
                }
                return text
            })
        case (.list, .scalar(let scalar)):
            return .list([scalar.string])
        case (_, .scalar(let scalar)):
            return .scalar(scalar.string)
        default:
            throw InvalidConfiguration(description: "\(origin): '\(name)' must be a single value")
        }
    }

    private static func line(_ node: Node) -> Int {
        (node.mark?.line ?? 0)
    }
}

/// Settings from the environment: `HSMD_` and the name in capitals with `_` for `-`. Lists are
/// comma-separated.
enum EnvironmentSettings {
    static func read(_ environment: [String: String], known: [String: SettingKind]) -> [String: RawSetting] {
        var settings: [String: RawSetting] = [:]
        for (name, kind) in known {
            let variable = variableName(name)
            guard let text = environment[variable] else { continue }
            let value: RawSetting.Value = kind == .list
                ? .list(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) : .scalar(text)
            settings[name] = RawSetting(value: value, origin: variable)
        }
        return settings
    }

    static func variableName(_ setting: String) -> String {
        "HSMD_" + setting.uppercased().replacingOccurrences(of: "-", with: "_")
    }
}
