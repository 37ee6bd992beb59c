/// The api-versions hsmd serves, in order. Every key operation needs one (Azure has no default).
public enum APIVersion: String, CaseIterable, Comparable, Sendable {
    case v7_4 = "7.4"
    case v7_5 = "7.5"
    case v7_6 = "7.6"
    case v2025_07_01 = "2025-07-01"

    public static func < (lhs: APIVersion, rhs: APIVersion) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    static var latest: APIVersion { allCases.last! }
}
