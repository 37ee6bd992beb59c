/// A key's rotation policy as Azure shapes it. hsmd stores and validates it, and applies
/// `expiryTime` to versions made by `rotate`; the automatic scheduler is not built yet.
public struct RotationPolicy: Sendable, Equatable, Codable {
    public struct LifetimeAction: Sendable, Equatable, Codable {
        public var trigger: Trigger
        public var action: Action
    }

    public struct Trigger: Sendable, Equatable, Codable {
        public var timeAfterCreate: String?
        public var timeBeforeExpiry: String?
    }

    public struct Action: Sendable, Equatable, Codable {
        public var type: String
    }

    public var lifetimeActions: [LifetimeAction]
    public var expiryTime: String?
    public var created: Int64
    public var updated: Int64

    public init(lifetimeActions: [LifetimeAction], expiryTime: String?, created: Int64, updated: Int64) {
        self.lifetimeActions = lifetimeActions
        self.expiryTime = expiryTime
        self.created = created
        self.updated = updated
    }

    static let minimumDays = 28

    /// Checks Managed HSM's rules: Rotate actions only (no Event Grid here), at most one, and every
    /// duration at least 28 days, leaving 28 days between a before-expiry trigger and expiry.
    func validate() throws(VaultError) {
        let expiry = try expiryTime.map { (text: String) throws(VaultError) -> ISO8601Duration in
            try ISO8601Duration.parse(text, field: "attributes.expiryTime")
        }
        if let expiry, expiry.approximateDays < Self.minimumDays {
            throw .badParameter("attributes.expiryTime must be at least P28D; it is \(expiryTime ?? "")")
        }
        guard lifetimeActions.count <= 1 else {
            throw .badParameter("lifetimeActions: Managed HSM allows one Rotate action")
        }
        for (index, action) in lifetimeActions.enumerated() {
            let field = "lifetimeActions[\(index)]"
            guard action.action.type.lowercased() == "rotate" else {
                throw .badParameter("\(field).action.type must be Rotate: Managed HSM has no Notify")
            }
            switch (action.trigger.timeAfterCreate, action.trigger.timeBeforeExpiry) {
            case (let afterCreate?, nil):
                let duration = try ISO8601Duration.parse(afterCreate, field: "\(field).trigger.timeAfterCreate")
                if duration.approximateDays < Self.minimumDays {
                    throw .badParameter("\(field).trigger.timeAfterCreate must be at least P28D; it is \(afterCreate)")
                }
            case (nil, let beforeExpiry?):
                let duration = try ISO8601Duration.parse(beforeExpiry, field: "\(field).trigger.timeBeforeExpiry")
                guard let expiry else {
                    throw .badParameter("\(field).trigger.timeBeforeExpiry needs attributes.expiryTime on the policy")
                }
                if duration.approximateDays > expiry.approximateDays - Self.minimumDays {
                    throw .badParameter("\(field).trigger.timeBeforeExpiry must be at most attributes.expiryTime minus 28 days")
                }
            default:
                throw .badParameter("\(field).trigger needs exactly one of timeAfterCreate and timeBeforeExpiry")
            }
        }
    }
}

/// An ISO 8601 duration such as `P90D`, `P1Y2M`, `PT48H` or `P2W`.
struct ISO8601Duration: Equatable {
    var years = 0, months = 0, weeks = 0, days = 0, hours = 0, minutes = 0, seconds = 0

    /// Calendar units counted as 365-day years and 30-day months, as rules of "at least N days" need.
    var totalSeconds: Int64 {
        Int64(((years * 365 + months * 30 + weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60 + seconds)
    }

    var approximateDays: Int { Int(totalSeconds / 86_400) }

    static func parse(_ text: String, field: String) throws(VaultError) -> ISO8601Duration {
        let invalid = VaultError.badParameter("\(field) must be an ISO 8601 duration such as P90D or P1Y; it is '\(text)'")
        var characters = Substring(text.uppercased())
        guard characters.popFirst() == "P", !characters.isEmpty else { throw invalid }
        var duration = ISO8601Duration()
        var inTime = false
        var number = ""
        var sawUnit = false
        for character in characters {
            if character == "T" {
                guard !inTime, number.isEmpty else { throw invalid }
                inTime = true
                continue
            }
            if character.isASCII, character.isNumber {
                number.append(character)
                continue
            }
            guard let value = Int(number), value <= 100_000 else { throw invalid }
            number = ""
            sawUnit = true
            switch (inTime, character) {
            case (false, "Y"): duration.years = value
            case (false, "M"): duration.months = value
            case (false, "W"): duration.weeks = value
            case (false, "D"): duration.days = value
            case (true, "H"): duration.hours = value
            case (true, "M"): duration.minutes = value
            case (true, "S"): duration.seconds = value
            default: throw invalid
            }
        }
        guard number.isEmpty, sawUnit else { throw invalid }
        return duration
    }
}
