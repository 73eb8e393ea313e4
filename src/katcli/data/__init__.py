"""katcli.data"""
