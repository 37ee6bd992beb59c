import Foundation
import GRDB

/// Custom role definitions and role assignments, in the same store as the keys.
extension MetadataStore {
    func roleDefinitions() throws -> [RoleDefinition] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT definition FROM role_definitions").map {
                try JSONDecoder().decode(RoleDefinition.self, from: Data($0.utf8))
            }
        }
    }

    func save(_ definition: RoleDefinition) throws {
        let text = String(decoding: try JSONEncoder().encode(definition), as: UTF8.self)
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO role_definitions (id, definition) VALUES (?, ?)", arguments: [definition.id, text])
        }
    }

    func deleteRoleDefinition(id: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM role_definitions WHERE id = ?", arguments: [id])
        }
    }

    func roleAssignments() throws -> [RoleAssignment] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM role_assignments").map { row in
                RoleAssignment(
                    name: row["name"], scope: row["scope"], roleDefinitionID: row["role_definition_id"],
                    principalID: row["principal_id"], isInitial: false)
            }
        }
    }

    func save(_ assignment: RoleAssignment) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO role_assignments (name, scope, role_definition_id, principal_id) VALUES (?, ?, ?, ?)",
                arguments: [assignment.name, assignment.scope, assignment.roleDefinitionID, assignment.principalID])
        }
    }

    func deleteRoleAssignment(name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM role_assignments WHERE name = ?", arguments: [name])
        }
    }
}
